"""Per-deployment secrets kept in `gateway_meta`, so every process of one gateway shares them
(paging cursors, websocket binding tokens, the demo clients' seed, the decision cache's namespace)."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from gateway.fhir.errors import FhirError
from gateway.store.api import Store
from gateway.store.schema import gateway_meta


def meta_secret(store: Store, key: str) -> bytes:
    """The secret under `key`, made (32 random bytes) by the first process that asks.

    Processes starting together may both find none: the one whose insert loses that race (a
    conflict) reads the winner's on its second go instead of failing its start-up.
    """
    for attempt in range(2):
        try:
            with store.writer() as uow:
                row = uow.conn.execute(select(gateway_meta.c.value).where(gateway_meta.c.key == key)).first()
                if row is not None:
                    return bytes.fromhex(row.value)
                value = secrets.token_bytes(32)
                uow.conn.execute(gateway_meta.insert().values(key=key, value=value.hex()))
                return value
        except FhirError:
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
