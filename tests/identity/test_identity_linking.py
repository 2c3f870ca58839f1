"""Link decisions and the review Task (gateway/identity/linking.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.task import Task

from gateway.identity.linking import IDENTITY_TASK_SYSTEM, LinkAction, decide_link
from gateway.identity.matcher import Grade, Matcher, MatchResult
from gateway.identity.person import PersonRecord

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def rec(**changes: Any) -> PersonRecord:
    fields: dict[str, Any] = {
        "given": ["Margaret"],
        "family": "Hartley",
        "birth_date": "1948-05-17",
        "sex": "female",
        "postcodes": ["LS6 2QT"],
    }
    fields.update(changes)
    return PersonRecord.from_demographics(**fields)


NEW = rec()


def result(record_id: str, other: PersonRecord) -> MatchResult:
    return Matcher().compare(NEW, other, record_id=record_id)


CERTAIN = result("p1", rec(given=["Peggy"]))
PROBABLE = result("p2", rec(given=["Peggy"], family="Hartly", postcodes=["BD5 7AA"]))
POSSIBLE = result("p3", rec(given=["Susan"]))


def test_fixture_grades() -> None:
    assert (CERTAIN.grade, PROBABLE.grade, POSSIBLE.grade) == (Grade.CERTAIN, Grade.PROBABLE, Grade.POSSIBLE)


def test_one_certain_match_links() -> None:
    decision = decide_link("Patient/new", [POSSIBLE, CERTAIN, PROBABLE], now=NOW)
    assert decision.action is LinkAction.LINK
    assert decision.person_id == "p1"
    assert decision.review_task is None


def test_probable_match_links_provisionally_with_a_review_task() -> None:
    decision = decide_link("Patient/new", [PROBABLE, POSSIBLE], now=NOW, task_id="t1")
    assert decision.action is LinkAction.PROVISIONAL_LINK
    assert decision.person_id == "p2"
    task = decision.review_task
    assert task is not None
    Task.model_validate(task)  # a valid R4(B) Task
    assert task["id"] == "t1"
    assert task["status"] == "requested"
    assert task["code"]["coding"][0]["system"] == IDENTITY_TASK_SYSTEM
    assert task["focus"] == {"reference": "Patient/new"}
    assert task["for"] == {"reference": "Patient/p2"}
    assert task["authoredOn"] == "2025-03-01T09:30:00+00:00"
    inputs = {i["type"]["text"]: i for i in task["input"]}
    assert inputs["candidate"]["valueReference"] == {"reference": "Patient/p2"}
    assert inputs["match-grade"]["valueCode"] == "probable"
    assert inputs["field:given"]["valueString"].startswith("nickname (+")
    assert inputs["field:postcode"]["valueString"].startswith("disagree (-")
    # no personal data in the explanation: levels and weights only
    assert "hartley" not in str(task["input"]).lower() and "peggy" not in str(task["input"]).lower()


def test_several_certain_matches_go_to_review() -> None:
    twin_record = result("p4", rec(given=["Margaret"]))
    decision = decide_link("Patient/new", [CERTAIN, twin_record], now=NOW)
    assert decision.action is LinkAction.PROVISIONAL_LINK
    assert decision.person_id == "p4"  # the higher score
    assert decision.review_task is not None
    others = [i for i in decision.review_task["input"] if i["type"]["text"] == "other-candidate"]
    assert others == [{**others[0], "valueReference": {"reference": "Patient/p1"}}]


def test_possible_or_nothing_makes_a_new_person() -> None:
    for results in ([], [POSSIBLE]):
        decision = decide_link("Patient/new", results, now=NOW)
        assert decision.action is LinkAction.NEW_PERSON
        assert decision.person_id is None and decision.review_task is None
