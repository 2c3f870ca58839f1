"""The resources a presentation alert consists of, and the updates that take it back.

Two-sided alert (issue 5): the presenting service gets an active `Flag` on the Patient record it
used ("case-managed on <ward>, case manager <name>, contact <telecom>"); the case manager and the
team get a `Communication` about the Encounter; an admission also opens early discharge planning
as a `Task` for the case manager. Pure builders: the caller supplies the registry entry, the
presentation, the care manager (and team) resources, the gateway's own author reference and `now`.

Every id and identifier is derived from the presentation's dedupe key, so the pipeline can write
them with conditional create (`If-None-Exist: identifier=<PRESENTATION_KEY_SYSTEM>|<key>`) or PUT
by id: a repeated message of the same visit changes nothing, a new visit is a new key.

Who is the subject: the Flag goes on `presentation.subject_ref` (the presenting organisation's own
Patient record, which is what `Flag?patient=` is asked with there); the Communication and the Task
go on the case-managed Patient (`entry.patient_ref`), which is the record the case manager works on.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.alerts.reasoning import AlertReasoning, to_extension
from gateway.alerts.registry import EXT_CARE_PLAN, CaseManagedEntry
from gateway.alerts.rules import PRESENTATION_KEY_SYSTEM, Presentation
from gateway.codes import ALERT_CODE_SYSTEM, CASE_MANAGED_FLAG, EARLY_DISCHARGE_PLANNING, PRESENTATION_ALERT
from gateway.types import JSON

FLAG_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-category"


@dataclass(frozen=True)
class AlertIds:
    flag: str
    communication: str
    task: str


def alert_ids(dedupe_key: str) -> AlertIds:
    """Resource ids of one presentation's alert (ids stay within FHIR's 64-character limit)."""
    return AlertIds(f"cm-flag-{dedupe_key}", f"cm-alert-{dedupe_key}", f"cm-discharge-{dedupe_key}")


def _instant(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.isoformat(timespec="seconds")


def _key_identifier(key: str) -> list[JSON]:
    return [{"system": PRESENTATION_KEY_SYSTEM, "value": key}]


def person_name(resource: JSON | None) -> str | None:
    """A display name for a Practitioner / PractitionerRole / Patient, or None."""
    if not resource:
        return None
    if resource.get("resourceType") == "PractitionerRole":
        display = (resource.get("practitioner") or {}).get("display")
        return str(display) if display else None
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        joined = " ".join(p for p in parts if p)
        if joined:
            return joined
    return None


def _telecom(resource: JSON | None) -> str | None:
    points = [t for t in (resource or {}).get("telecom") or [] if t.get("value")]
    phones = [t for t in points if t.get("system") == "phone"]
    chosen = (phones or points or [None])[0]
    return str(chosen["value"]) if chosen else None


def contact_for(care_manager: JSON | None, team: JSON | None) -> str | None:
    """The number to call: the CareTeam's single point of contact (the ward clerk, reachable at
    night) when it has one, else the case manager's own phone."""
    return _telecom(team) or _telecom(care_manager)


def contact_line(entry: CaseManagedEntry, care_manager: JSON | None, team: JSON | None = None) -> str:
    """ "case-managed on <ward>, case manager <name>, contact <telecom>"."""
    name = person_name(care_manager) or entry.care_manager_display or entry.care_manager
    contact = contact_for(care_manager, team) or "not recorded"
    return f"case-managed on {entry.ward_name}, case manager {name}, contact {contact}"


def build_flag(
    entry: CaseManagedEntry,
    presentation: Presentation,
    care_manager: JSON | None,
    care_plan_ref: str | None = None,
    *,
    author_ref: str,
    now: datetime,
    team: JSON | None = None,
) -> JSON:
    """The Flag the presenting organisation sees: active from the presentation time."""
    care_plan = care_plan_ref or entry.care_plan
    flag: JSON = {
        "resourceType": "Flag",
        "id": alert_ids(presentation.dedupe_key).flag,
        "identifier": _key_identifier(presentation.dedupe_key),
        "status": "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": "admin"}]}],
        "code": {
            "coding": [{"system": ALERT_CODE_SYSTEM, "code": CASE_MANAGED_FLAG, "display": "Case-managed"}],
            "text": contact_line(entry, care_manager, team),
        },
        "subject": {"reference": presentation.subject_ref or entry.patient_ref},
        "period": {"start": presentation.time or _instant(now)},
        "encounter": {"reference": presentation.encounter_ref},
        "author": {"reference": author_ref},
    }
    if care_plan:
        flag["extension"] = [{"url": EXT_CARE_PLAN, "valueReference": {"reference": care_plan}}]
    return flag


def alert_text(entry: CaseManagedEntry, presentation: Presentation) -> str:
    """The Communication payload: what happened, where, when; no names (ids travel separately)."""
    where = presentation.organisation_display or presentation.organisation_ref or "an unrecorded service"
    when = f" at {presentation.time}" if presentation.time else ""
    text = f"A person on {entry.ward_name} has presented: {presentation.label} at {where}{when}."
    if presentation.is_admission:
        text += " Admitted: an early discharge planning task has been opened for the case manager."
    return text


def build_communication(
    entry: CaseManagedEntry,
    presentation: Presentation,
    *,
    author_ref: str,
    now: datetime,
    reasoning: AlertReasoning | None = None,
) -> JSON:
    """The alert to the case manager and the team, about the Encounter, from the presenting service."""
    communication: JSON = {
        "resourceType": "Communication",
        "id": alert_ids(presentation.dedupe_key).communication,
        "identifier": _key_identifier(presentation.dedupe_key),
        "status": "completed",
        "category": [{"coding": [{"system": ALERT_CODE_SYSTEM, "code": PRESENTATION_ALERT}]}],
        "priority": "urgent",
        "subject": {"reference": entry.patient_ref},
        "about": [{"reference": presentation.encounter_ref}, {"reference": entry.episode_ref}],
        "sent": _instant(now),
        "recipient": [{"reference": r} for r in (entry.care_manager, *entry.teams)],
        "sender": {"reference": presentation.organisation_ref or author_ref},
        "payload": [{"contentString": alert_text(entry, presentation)}],
    }
    if reasoning is not None:
        communication["extension"] = [to_extension(reasoning)]
    return communication


def build_discharge_task(
    entry: CaseManagedEntry,
    presentation: Presentation,
    care_plan_ref: str | None = None,
    *,
    author_ref: str,
    now: datetime,
) -> JSON:
    """Early discharge planning, opened on admission, owned by the case manager."""
    care_plan = care_plan_ref or entry.care_plan
    task: JSON = {
        "resourceType": "Task",
        "id": alert_ids(presentation.dedupe_key).task,
        "identifier": _key_identifier(presentation.dedupe_key),
        "status": "requested",
        "intent": "plan",
        "priority": "urgent",
        "code": {
            "coding": [
                {
                    "system": ALERT_CODE_SYSTEM,
                    "code": EARLY_DISCHARGE_PLANNING,
                    "display": "Early discharge planning",
                }
            ]
        },
        "description": "Plan the discharge with the admitting ward from day one.",
        "focus": {"reference": presentation.encounter_ref},
        "for": {"reference": entry.patient_ref},
        "encounter": {"reference": presentation.encounter_ref},
        "authoredOn": _instant(now),
        "requester": {"reference": author_ref},
        "owner": {"reference": entry.care_manager},
    }
    if care_plan:
        task["basedOn"] = [{"reference": care_plan}]
    return task


def build_alert(
    entry: CaseManagedEntry,
    presentation: Presentation,
    care_manager: JSON | None,
    *,
    author_ref: str,
    now: datetime,
    team: JSON | None = None,
    care_plan_ref: str | None = None,
    reasoning: AlertReasoning | None = None,
) -> list[JSON]:
    """Flag + Communication, and the discharge Task when the presentation is an admission."""
    resources = [
        build_flag(entry, presentation, care_manager, care_plan_ref, author_ref=author_ref, now=now, team=team),
        build_communication(entry, presentation, author_ref=author_ref, now=now, reasoning=reasoning),
    ]
    if presentation.is_admission:
        resources.append(build_discharge_task(entry, presentation, care_plan_ref, author_ref=author_ref, now=now))
    return resources


def retract(existing: Iterable[JSON], *, reason: str, now: datetime) -> list[JSON]:
    """Updated copies that take an alert back: Flag and Communication entered-in-error, Task cancelled.

    `existing` is whatever of the alert's resources the store holds (look them up by `alert_ids`).
    Resources already retracted are returned unchanged, so applying twice is harmless.
    """
    updated: list[JSON] = []
    for resource in existing:
        new = copy.deepcopy(resource)
        kind = new.get("resourceType")
        if kind == "Flag":
            new["status"] = "entered-in-error"
            new.setdefault("period", {}).setdefault("end", _instant(now))
        elif kind == "Communication":
            new["status"] = "entered-in-error"
            new["statusReason"] = {"text": reason}
        elif kind == "Task" and new.get("status") not in ("completed", "cancelled"):
            new["status"] = "cancelled"
            new["statusReason"] = {"text": reason}
            new["lastModified"] = _instant(now)
        updated.append(new)
    return updated


def end_flag(flag: JSON, *, now: datetime) -> JSON:
    """The Flag once the person is no longer case-managed (episode closed): inactive, period ended."""
    new = copy.deepcopy(flag)
    if new.get("status") == "active":
        new["status"] = "inactive"
        new.setdefault("period", {})["end"] = _instant(now)
    return new
