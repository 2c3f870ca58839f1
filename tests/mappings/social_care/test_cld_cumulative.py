"""Cumulative returns: cld_2024_q2.csv repeats Q1's events, fills in end dates and outcomes, adds new ones.

Recognised by event_key (no event id in CLD): a repeat maps to identical resources, a filled-in
end date or outcome maps to the same identifiers with period.end and status updated.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.mappings.social_care import Accepted, RowResult
from gateway.types import JSON

MapFile = Callable[[str], list[RowResult]]
Pick = Callable[[tuple[JSON, ...], str], JSON]


def accepted(results: list[RowResult]) -> dict[int, Accepted]:
    assert all(isinstance(r, Accepted) for r in results)
    return {r.row_number: r for r in results if isinstance(r, Accepted)}


@pytest.fixture(scope="module")
def q1(map_file: MapFile) -> dict[int, Accepted]:
    return accepted(map_file("cld_2024_q1.csv"))


@pytest.fixture(scope="module")
def q2(map_file: MapFile) -> dict[int, Accepted]:
    # Q2 also exercises the reader: UTF-8 BOM, headers in upper/lower case with stray spaces.
    return accepted(map_file("cld_2024_q2.csv"))


def keys(resources: tuple[JSON, ...]) -> list[tuple[str, object]]:
    return [
        (r["resourceType"], r["identifier"] if isinstance(r["identifier"], dict) else r["identifier"][0])
        for r in resources
    ]


def test_q2_repeats_every_q1_event_under_the_same_key(q1: dict[int, Accepted], q2: dict[int, Accepted]) -> None:
    assert len(q2) == 33
    for number, first in q1.items():
        again = q2[number]  # Q2 keeps Q1's rows in order, then appends
        assert again.event_key == first.event_key
        assert keys(again.resources) == keys(first.resources)


def test_unchanged_events_map_to_identical_resources(q1: dict[int, Accepted], q2: dict[int, Accepted]) -> None:
    changed = {3, 5, 6, 14, 15, 16, 18, 20, 27}
    for number in set(q1) - changed:
        assert q2[number].resources == q1[number].resources, number


def test_filled_in_end_date_closes_the_care_package(
    q1: dict[int, Accepted], q2: dict[int, Accepted], by_type: Pick
) -> None:
    before, after = by_type(q1[3].resources, "EpisodeOfCare"), by_type(q2[3].resources, "EpisodeOfCare")
    assert before["status"] == "active" and "end" not in before["period"]
    assert after["status"] == "finished" and after["period"] == {"start": "2024-04-22", "end": "2024-08-30"}
    assert after["identifier"] == before["identifier"]
    plan = by_type(q2[3].resources, "CarePlan")
    assert plan["status"] == "completed"
    assert plan["activity"][0]["detail"]["status"] == "completed"
    outcome = next(e for e in after["extension"] if e["url"].endswith("/asc-event-outcome"))
    assert outcome["valueCoding"]["display"] == "Service ended as planned"


def test_filled_in_outcome_completes_the_assessment(
    q1: dict[int, Accepted], q2: dict[int, Accepted], by_type: Pick
) -> None:
    before = by_type(q1[6].resources, "QuestionnaireResponse")
    after = by_type(q2[6].resources, "QuestionnaireResponse")
    assert before["status"] == "in-progress" and after["status"] == "completed"
    assert before["identifier"] == after["identifier"]
    answers = {i["linkId"]: i["answer"][0] for i in after["item"]}
    assert answers["eligible-needs-identified"] == {"valueBoolean": True}
    assert answers["event-end-date"] == {"valueDate": "2024-07-02"}


def test_move_from_residential_to_nursing_care(q2: dict[int, Accepted], by_type: Pick) -> None:
    ended = by_type(q2[18].resources, "EpisodeOfCare")
    started = by_type(q2[32].resources, "EpisodeOfCare")
    assert ended["status"] == "finished" and ended["period"]["end"] == "2024-07-19"
    assert started["status"] == "active" and started["period"] == {"start": "2024-07-20"}
    assert ended["identifier"] != started["identifier"]


def test_new_q2_events_have_new_keys(q1: dict[int, Accepted], q2: dict[int, Accepted]) -> None:
    q1_keys = {r.event_key for r in q1.values()}
    assert {q2[n].event_key for n in (31, 32, 33)}.isdisjoint(q1_keys)


def test_resending_the_same_extract_changes_nothing(map_file: MapFile, q2: dict[int, Accepted]) -> None:
    assert accepted(map_file("cld_2024_q2.csv")) == q2
