"""Tell a person's case manager that someone used break-glass access to their record.

The consent engine permits break-glass with an obligation (`notify-case-manager`); the guard
calls `BreakGlassNotifier` with each decision carrying it. One Communication per client, person
and hour (a deterministic id), so a burst of reads makes one notification, not hundreds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gateway.auth.context import AccessContext
from gateway.codes import ALERT_CODE_SYSTEM, BREAK_GLASS_ACCESS
from gateway.consent.decision import NOTIFY_CASE_MANAGER, FilterResult
from gateway.logging import get_logger
from gateway.store.api import Store, UnitOfWork
from gateway.store.schema import sp_reference

log = get_logger("gateway.alerts.break_glass")


def _case_managers(uow: UnitOfWork, patient_id: str) -> list[str]:
    ref = sp_reference.c
    episode_ids = uow.conn.execute(
        sp_reference.select()
        .with_only_columns(ref.res_id)
        .where(ref.res_type == "EpisodeOfCare", ref.param == "patient", ref.target_type == "Patient")
        .where(ref.target_id == patient_id)
    ).scalars()
    managers = []
    for episode in uow.fetch_many(("EpisodeOfCare", e) for e in set(episode_ids)):
        body = episode.json()
        manager = (body.get("careManager") or {}).get("reference")
        if body.get("status") == "active" and manager:
            managers.append(manager)
    return sorted(set(managers))


def notification(access: AccessContext, patient_id: str, managers: list[str], now: datetime) -> dict[str, Any]:
    hour = now.strftime("%Y%m%d%H")
    key = hashlib.sha256(f"{access.client_id}|{patient_id}|{hour}".encode()).hexdigest()[:32]
    return {
        "resourceType": "Communication",
        "id": f"btg-{key}",
        "status": "completed",
        "category": [{"coding": [{"system": ALERT_CODE_SYSTEM, "code": BREAK_GLASS_ACCESS}]}],
        "priority": "urgent",
        "subject": {"reference": f"Patient/{patient_id}"},
        "sent": now.isoformat(timespec="seconds"),
        "recipient": [{"reference": m} for m in managers],
        **({"sender": {"reference": access.organization}} if access.organization else {}),
        "payload": [
            {
                "contentString": (
                    f"Break-glass access to this person's record by client {access.client_id}"
                    f"{' of ' + access.organization if access.organization else ''}"
                    f" ({access.role or 'no role'}). Reason given: {access.break_glass_reason or 'none'}."
                )
            }
        ],
    }


class BreakGlassNotifier:
    def __init__(self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.clock = clock

    def __call__(self, access: AccessContext, result: FilterResult) -> None:
        patients = sorted(
            {p for d in result.decisions if d.permit and NOTIFY_CASE_MANAGER in d.obligations for p in d.patients}
        )
        if not patients:
            return
        now = self.clock()
        with self.store.writer() as uow:
            for patient_id in patients:
                managers = _case_managers(uow, patient_id)
                if not managers:
                    continue
                uow.update(notification(access, patient_id, managers, now))
                log.info("break_glass.notified", patient_id=patient_id, client_id=access.client_id)
