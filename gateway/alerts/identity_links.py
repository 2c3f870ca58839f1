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

from collections import deque
from dataclasses import dataclass

from sqlalchemy import select

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


def _forward(uow: UnitOfWork, patient_id: str) -> list[tuple[str, str]]:
    stored = uow.get("Patient", patient_id)
    if stored is None or stored.deleted or stored.content is None:
        return []
    found: list[tuple[str, str]] = []
    for link in stored.json().get("link") or []:
        ref = relative_ref((link.get("other") or {}).get("reference"))
        if ref and ref.startswith("Patient/"):
            found.append((str(ref_id(ref)), f"Patient/{patient_id} link {link.get('type', '?')} {ref}"))
    return found


def _backward(uow: UnitOfWork, patient_id: str) -> list[tuple[str, str]]:
    # The `link` search index holds current versions only, so the ids it gives are live links.
    ref = sp_reference.c
    ids = uow.conn.execute(
        select(ref.res_id)
        .where(ref.target_type == "Patient", ref.target_id == patient_id)
        .where(ref.res_type == "Patient", ref.param == "link")
        .distinct()
        .limit(MAX_FAN_OUT)
    ).scalars()
    found: list[tuple[str, str]] = []
    for stored in uow.fetch_many(("Patient", rid) for rid in sorted(ids)):
        types = [
            str(link.get("type", "?"))
            for link in stored.json().get("link") or []
            if ref_id((link.get("other") or {}).get("reference")) == patient_id
        ]
        found.append((stored.id, f"Patient/{stored.id} link {','.join(types) or '?'} Patient/{patient_id}"))
    return found


def linked_patients(uow: UnitOfWork, patient_id: str, *, max_hops: int = MAX_HOPS) -> LinkedPatients:
    """The presenting record plus every Patient linked to it, in either direction (breadth first)."""
    via: dict[str, str] = {patient_id: SAME_PATIENT}
    queue: deque[tuple[str, int]] = deque([(patient_id, 0)])
    while queue:
        current, depth = queue.popleft()
        if depth >= max_hops:
            continue
        for other, step in [*_forward(uow, current), *_backward(uow, current)]:
            if other in via:
                continue
            before = via[current]
            via[other] = step if before == SAME_PATIENT else f"{before}; {step}"
            queue.append((other, depth + 1))
    return LinkedPatients(patient_id, via)
