"""Storing a batch of AuditEvents in one transaction, its inserts batched.

An AuditEvent carries a fresh id, so it is almost always new: one statement finds the ids the
store already holds (a batch delivered again after an uncertain commit), those go through
`update` (no new version when unchanged: delivering twice stays harmless), and the rest are
created with their own id. Creating skips the per-event read of the current version, and that
read is what flushed the queued inserts one event at a time; now each table gets one
executemany per batch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.store.api import Store
from gateway.store.schema import resource


def store_audit_events(store: Store, events: list[dict[str, Any]]) -> None:
    by_type: dict[str, list[str]] = {}
    for event in events:
        if event.get("id"):
            by_type.setdefault(str(event["resourceType"]), []).append(str(event["id"]))
    r = resource.c
    with store.writer() as uow:
        held: set[tuple[str, str]] = set()
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), 500):
                found = uow.conn.execute(
                    select(r.res_id).where(r.res_type == rtype, r.res_id.in_(ids[start : start + 500]))
                ).scalars()
                held.update((rtype, rid) for rid in found)
        for event in events:
            if not event.get("id"):
                uow.create(event)
                continue
            key = (str(event["resourceType"]), str(event["id"]))
            if key in held:
                uow.update(event)
            else:
                held.add(key)  # the same id twice in one batch: the second is an update
                uow.create(event, rid=key[1])
