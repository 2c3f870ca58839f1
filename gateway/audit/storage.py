"""Storing a batch of AuditEvents in one transaction, its inserts batched.

An AuditEvent carries a fresh, time-ordered id, so a batch is almost always new: it is created as
it is (one executemany, or COPY, per table), without first asking which ids are stored. Only when
that fails (a batch delivered again after an uncertain commit, the same id twice in one batch, or
any other error) is the batch written the careful way, in a new transaction: one statement finds
the ids the store already holds, those go through `update` (no new version when unchanged:
delivering twice stays harmless), and the rest are created with their own id. A failure there
too is raised to the writer, which keeps the batch and retries it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from gateway.logging import get_logger
from gateway.store.api import Store
from gateway.store.schema import resource

log = get_logger("gateway.audit")

_r = resource.c
_HELD = select(_r.res_id).where(_r.res_type == bindparam("rtype"), _r.res_id.in_(bindparam("ids", expanding=True)))


def store_audit_events(store: Store, events: list[dict[str, Any]]) -> None:
    try:
        _create_all(store, events)
    except Exception:  # nothing of the attempt is committed: write it again, checking what is held
        log.info("audit.batch_checked", events=len(events))
        _store_checked(store, events)


def _create_all(store: Store, events: list[dict[str, Any]]) -> None:
    with store.writer() as uow:
        for event in events:
            uow.create(event, rid=str(event["id"]) if event.get("id") else None)


def _store_checked(store: Store, events: list[dict[str, Any]]) -> None:
    by_type: dict[str, list[str]] = {}
    for event in events:
        if event.get("id"):
            by_type.setdefault(str(event["resourceType"]), []).append(str(event["id"]))
    with store.writer() as uow:
        held: set[tuple[str, str]] = set()
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), 500):
                found = uow.conn.execute(_HELD, {"rtype": rtype, "ids": ids[start : start + 500]}).scalars()
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
