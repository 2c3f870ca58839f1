"""Monitoring and closure: which care plans are due for review, and how an episode is closed.

R4 CarePlan has no review date, so the gateway carries it as an extension
(`EXT_CARE_PLAN_REVIEW_DATE`, valueDate) on the CarePlan; the profiles in `profiles/` name it.
A plan is due when its review date is today or earlier (a review due today belongs on today's list).

Closing an episode is an ordinary update of the EpisodeOfCare: status `finished`, `period.end`,
a `statusHistory` entry for the status it leaves, and the reason as an extension
(`EXT_CLOSURE_REASON`, valueCodeableConcept). Once stored, `case_managed_entry` no longer accepts
it, so the registry drops the person and alerting for them ends.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from gateway.codes import EXT_BASE
from gateway.fhir.errors import conflict
from gateway.types import JSON

EXT_CARE_PLAN_REVIEW_DATE = f"{EXT_BASE}/care-plan-review-date"
EXT_CLOSURE_REASON = f"{EXT_BASE}/closure-reason"
REVIEWABLE_STATUSES = frozenset({"active", "on-hold"})
CLOSED_STATUSES = frozenset({"finished", "cancelled", "entered-in-error"})


@dataclass(frozen=True)
class ReviewItem:
    care_plan_id: str
    patient_ref: str | None
    review_date: date
    overdue_days: int


def review_date(care_plan: JSON) -> date | None:
    for ext in care_plan.get("extension") or []:
        if ext.get("url") == EXT_CARE_PLAN_REVIEW_DATE and ext.get("valueDate"):
            try:
                return date.fromisoformat(str(ext["valueDate"])[:10])
            except ValueError:
                return None
    return None


def due_for_review(care_plans: Iterable[JSON], *, today: date) -> list[ReviewItem]:
    """Active / on-hold CarePlans whose review date is today or past, most overdue first."""
    items: list[ReviewItem] = []
    for plan in care_plans:
        when = review_date(plan)
        if plan.get("status") not in REVIEWABLE_STATUSES or when is None or when > today:
            continue
        subject = (plan.get("subject") or {}).get("reference")
        items.append(ReviewItem(str(plan.get("id")), subject, when, (today - when).days))
    return sorted(items, key=lambda i: (-i.overdue_days, i.care_plan_id))


def close_episode(episode: JSON, reason: str | JSON, now: datetime) -> JSON:
    """The EpisodeOfCare as closed (a new version to store); `reason` is text or a CodeableConcept.

    Raises `FhirError` (409 conflict) when the episode is already closed.
    """
    if episode.get("status") in CLOSED_STATUSES:
        raise conflict(f"EpisodeOfCare/{episode.get('id')} is already {episode.get('status')}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    stamp = now.isoformat(timespec="seconds")
    closed = copy.deepcopy(episode)
    history = closed.setdefault("statusHistory", [])
    previous_start = ((history[-1].get("period") or {}).get("end") if history else None) or (
        closed.get("period") or {}
    ).get("start")
    left: JSON = {"status": closed.get("status", "active"), "period": {"end": stamp}}
    if previous_start:
        left["period"]["start"] = previous_start
    history.append(left)
    closed["status"] = "finished"
    closed.setdefault("period", {})["end"] = stamp
    concept = {"text": reason} if isinstance(reason, str) else reason
    others = [e for e in closed.get("extension") or [] if e.get("url") != EXT_CLOSURE_REASON]
    closed["extension"] = [*others, {"url": EXT_CLOSURE_REASON, "valueCodeableConcept": concept}]
    return closed
