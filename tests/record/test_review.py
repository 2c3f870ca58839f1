"""Review and closure (issue 6, item 6): due-for-review CarePlans; closing an episode ends alerting."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.alerts.registry import InMemoryRegistry, case_managed_entry
from gateway.codes import EPISODE_TYPE_SYSTEM, VIRTUAL_WARD
from gateway.fhir.errors import FhirError
from gateway.record.review import EXT_CARE_PLAN_REVIEW_DATE, EXT_CLOSURE_REASON, close_episode, due_for_review

TODAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def plan(pid: str, review: str | None, status: str = "active") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": pid,
        "status": status,
        "intent": "plan",
        "subject": {"reference": f"Patient/{pid}-patient"},
    }
    if review:
        resource["extension"] = [{"url": EXT_CARE_PLAN_REVIEW_DATE, "valueDate": review}]
    return valid(resource)


def test_due_for_review_lists_passed_and_today_most_overdue_first() -> None:
    plans = [
        plan("future", "2026-03-11"),
        plan("today", "2026-03-10"),
        plan("late", "2026-02-01"),
        plan("later", "2026-03-01"),
        plan("no-date", None),
        plan("finished", "2026-01-01", status="completed"),
    ]
    items = due_for_review(plans, today=TODAY)
    assert [(i.care_plan_id, i.overdue_days) for i in items] == [("late", 37), ("later", 9), ("today", 0)]
    assert items[0].patient_ref == "Patient/late-patient"


def episode() -> dict[str, Any]:
    return valid(
        {
            "resourceType": "EpisodeOfCare",
            "id": "ep1",
            "status": "active",
            "statusHistory": [{"status": "waitlist", "period": {"start": "2026-01-01", "end": "2026-01-05"}}],
            "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
            "patient": {"reference": "Patient/p1"},
            "careManager": {"reference": "Practitioner/cm1"},
            "team": [{"reference": "CareTeam/t1"}],
            "period": {"start": "2026-01-05"},
        }
    )


def test_close_episode_records_reason_and_history() -> None:
    original = episode()
    closed = valid(close_episode(original, "Goals met; back to GP care", NOW))
    assert closed["status"] == "finished"
    assert closed["period"] == {"start": "2026-01-05", "end": "2026-03-10T15:30:00+00:00"}
    assert closed["statusHistory"][-1] == {
        "status": "active",
        "period": {"start": "2026-01-05", "end": "2026-03-10T15:30:00+00:00"},
    }
    assert closed["extension"] == [
        {"url": EXT_CLOSURE_REASON, "valueCodeableConcept": {"text": "Goals met; back to GP care"}}
    ]
    assert original["status"] == "active"  # input untouched


def test_closing_ends_alerting_through_the_registry() -> None:
    async def run() -> None:
        registry = InMemoryRegistry()
        await registry.apply_episode(episode())
        assert len(await registry.lookup(["p1"])) == 1
        assert await registry.apply_episode(close_episode(episode(), "died", NOW)) is None
        assert await registry.lookup(["p1"]) == []

    assert case_managed_entry(episode()) is not None
    asyncio.run(run())


def test_closing_twice_is_a_conflict() -> None:
    closed = close_episode(episode(), "moved away", NOW)
    with pytest.raises(FhirError) as err:
        close_episode(closed, "again", NOW)
    assert err.value.status == 409
