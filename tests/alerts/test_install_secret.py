"""The per-deployment secrets shared by every gateway process (`gateway.store.meta_secrets`)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.store import meta_secrets
from gateway.store.api import Store
from gateway.store.schema import gateway_meta


def test_secret_first_written_by_another_process_is_taken(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes starting together both find no secret; the one whose insert loses the race
    takes the winner's secret instead of failing its start-up (a duplicate key)."""
    theirs = bytes(range(32))
    real = meta_secrets.secrets.token_bytes

    def other_process_wins(n: int) -> bytes:
        with pg_store.engine.begin() as conn:  # the other process commits its secret first
            conn.execute(gateway_meta.insert().values(key="ws_binding_secret", value=theirs.hex()))
        return real(n)

    monkeypatch.setattr(meta_secrets.secrets, "token_bytes", other_process_wins)
    assert meta_secrets.meta_secret(pg_store, "ws_binding_secret") == theirs
    with pg_store.engine.connect() as conn:
        stored = conn.execute(select(gateway_meta.c.value).where(gateway_meta.c.key == "ws_binding_secret")).all()
    assert [row.value for row in stored] == [theirs.hex()]


def test_decision_namespace_stored_by_an_older_gateway_reads_back_unchanged(pg_store: Store) -> None:
    """The decision cache's namespace was a UUID's hex before it became a `meta_secret`: a database
    that holds one keeps it, so keys shared in Redis stay the same across the upgrade."""
    from gateway.fhir.access import DECISION_NAMESPACE_KEY, ConsentGuard

    older = "0123456789abcdef0123456789abcdef"
    with pg_store.engine.begin() as conn:
        conn.execute(gateway_meta.insert().values(key=DECISION_NAMESPACE_KEY, value=older))
    assert ConsentGuard(pg_store)._deployment == older
