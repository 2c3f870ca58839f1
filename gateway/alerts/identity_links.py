"""Who a presenting Patient record is, across the records linked to it.

A hospital registers a person under its own hospital number; the identity module links that
Patient to the case-managed one (`Patient.link`: seealso, replaces / replaced-by after a merge).
The alert pipeline must find the case-managed episode from either side, so this follows
`Patient.link.other` forwards (the links this record holds) and backwards (records whose links
point here, via the `link` search parameter), a few hops deep.

Every id found carries how it was reached, so the alert can say why it believes the match:
`same-patient` for the record itself, otherwise the chain of links.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, union

from gateway.alerts.registry import ref_id, relative_ref
from gateway.store.api import UnitOfWork
from gateway.store.schema import sp_reference

MAX_HOPS = 4
"""Links are short chains in practice (local record -> master, merged -> survivor)."""
MAX_FAN_OUT = 100
"""A record linked to more than this many others is a data problem, not a person: stop there."""

SAME_PATIENT = "same-patient"


@dataclass(frozen=True)
class LinkedPatients:
    """Patient ids reachable from the presenting record, each with how it was reached."""

    start: str
    via: dict[str, str]

    @property
    def ids(self) -> list[str]:
        return list(self.via)

    def how(self, patient_id: str) -> str:
        return self.via.get(patient_id, "unlinked")


def _links(uow: UnitOfWork, patient_ids: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Each record's links, forwards (`Patient.link` it holds) then backwards (records whose links
    point at it, from the current-version `link` index): two queries for any number of records."""
    ids = list(dict.fromkeys(patient_ids))
    found: dict[str, list[tuple[str, str]]] = {pid: [] for pid in ids}
    for stored in uow.fetch_many(("Patient", pid) for pid in ids):
        for link in stored.json().get("link") or []:
            ref = relative_ref((link.get("other") or {}).get("reference"))
            if ref and ref.startswith("Patient/"):
                found[stored.id].append((str(ref_id(ref)), f"Patient/{stored.id} link {link.get('type', '?')} {ref}"))
    sp = sp_reference.c
    pairs = uow.conn.execute(
        select(sp.res_id, sp.target_id)
        .where(sp.target_type == "Patient", sp.target_id.in_(ids))
        .where(sp.res_type == "Patient", sp.param == "link")
        .distinct()
    ).all()
    pointing: dict[str, list[str]] = {}
    for row in pairs:
        pointing.setdefault(row.target_id, []).append(row.res_id)
    sources = {s.id: s.json() for s in uow.fetch_many(("Patient", r) for r in sorted({p.res_id for p in pairs}))}
    for target, holders in pointing.items():
        for holder in sorted(holders)[:MAX_FAN_OUT]:
            if holder not in sources:
                continue
            types = [
                str(link.get("type", "?"))
                for link in sources[holder].get("link") or []
                if ref_id((link.get("other") or {}).get("reference")) == target
            ]
            found[target].append((holder, f"Patient/{holder} link {','.join(types) or '?'} Patient/{target}"))
    return found


def _with_links(uow: UnitOfWork, patient_ids: list[str]) -> set[str]:
    """The ids among these that hold a `Patient.link` or are the target of one (one query)."""
    if not patient_ids:
        return set()
    return {str(row.pid) for row in uow.conn.execute(_with_links_query(), {"ids": patient_ids})}


@functools.cache
def _with_links_query() -> Any:
    """Built once: the alert pipeline's screen asks it for every batch of Encounters."""
    sp = sp_reference.c
    ids: Any = bindparam("ids", expanding=True)
    holders = select(sp.res_id.label("pid")).where(sp.res_type == "Patient", sp.res_id.in_(ids), sp.param == "link")
    targets = select(sp.target_id.label("pid")).where(
        sp.res_type == "Patient", sp.param == "link", sp.target_type == "Patient", sp.target_id.in_(ids)
    )
    return union(holders, targets)


def linked_patients(uow: UnitOfWork, patient_id: str, *, max_hops: int = MAX_HOPS) -> LinkedPatients:
    """The presenting record plus every Patient linked to it, in either direction (breadth first)."""
    return linked_patients_many(uow, [patient_id], max_hops=max_hops)[patient_id]


def linked_patients_many(
    uow: UnitOfWork, patient_ids: Iterable[str], *, max_hops: int = MAX_HOPS
) -> dict[str, LinkedPatients]:
    """`linked_patients` for several presenting records at once, a hop at a time for all of them.

    Most presenting records are linked to nothing: one index query finds those that are, and only
    they are followed (no Patient read for the rest).
    """
    via = {pid: {pid: SAME_PATIENT} for pid in patient_ids}
    with_links = _with_links(uow, list(via))
    frontier = {pid: [pid] for pid in via if pid in with_links}
    for _ in range(max_hops):
        if not frontier:
            break
        steps = _links(uow, (x for xs in frontier.values() for x in xs))
        reached: dict[str, list[str]] = {}
        for start, current in frontier.items():
            seen = via[start]
            for node in current:
                for other, step in steps.get(node, []):
                    if other in seen:
                        continue
                    before = seen[node]
                    seen[other] = step if before == SAME_PATIENT else f"{before}; {step}"
                    reached.setdefault(start, []).append(other)
        frontier = reached
    return {pid: LinkedPatients(pid, seen) for pid, seen in via.items()}
