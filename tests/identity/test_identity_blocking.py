"""Candidate blocking (gateway/identity/blocking.py): each key finds the duplicate it is for."""

from __future__ import annotations

from typing import Any

from gateway.identity.blocking import CandidateIndex, InMemoryCandidateIndex, blocking_keys
from gateway.identity.matcher import swap_names
from gateway.identity.nhs_number import with_check_digit
from gateway.identity.person import PersonRecord

NHS = with_check_digit("999000123") or ""


def rec(**changes: Any) -> PersonRecord:
    fields: dict[str, Any] = {
        "given": ["Arthur"],
        "family": "Pritchard",
        "birth_date": "1939-04-11",
        "sex": "male",
        "postcodes": ["WF1 2AB"],
    }
    fields.update(changes)
    return PersonRecord.from_demographics(**fields)


def found(index: InMemoryCandidateIndex, query: PersonRecord) -> list[str]:
    return [record_id for record_id, _ in index.candidates(query)]


def test_in_memory_index_satisfies_the_protocol() -> None:
    index: CandidateIndex = InMemoryCandidateIndex()
    index.add("a", rec())
    assert [rid for rid, _ in index.candidates(rec())] == ["a"]


def test_each_kind_of_error_still_meets_a_key() -> None:
    stored = rec(nhs_number=NHS)
    index = InMemoryCandidateIndex()
    index.add("a", stored)
    queries = {
        "nhs only": PersonRecord.from_demographics(nhs_number=NHS),
        "transposed date, typo in first letter": rec(family="Britchard", birth_date="1939-11-04"),
        "surname typo, wrong day, moved": rec(family="Pritchad", birth_date="1939-04-12", postcodes=["LS1 1AA"]),
        "wrong year, moved": rec(birth_date="1949-04-11", postcodes=["LS1 1AA"]),
        "swapped names, moved, wrong day": rec(
            given=["Pritchard"], family="Arthur", birth_date="1939-04-12", postcodes=["LS1 1AA"]
        ),
        "double-barrelled": rec(family="Pritchard-Lloyd", birth_date="1939-04-12"),
        "year and month only": rec(birth_date="1939-04", postcodes=[]),
        "surname and year wrong, same address": rec(family="Vritchard", birth_date="1929-04-11"),
    }
    for why, query in queries.items():
        assert found(index, query) == ["a"], why


def test_unrelated_person_is_not_a_candidate() -> None:
    index = InMemoryCandidateIndex()
    index.add("a", rec())
    assert found(index, rec(given=["Ngozi"], family="Okafor", birth_date="1990-02-02", postcodes=["HG1 1AA"])) == []


def test_remove_and_replace() -> None:
    index = InMemoryCandidateIndex()
    index.add("a", rec())
    index.add("b", rec(given=["Albert"]))
    index.remove("a")
    index.remove("unknown")
    assert found(index, rec()) == ["b"]
    assert "a" not in index and len(index) == 1
    index.add("b", rec(given=["Ngozi"], family="Okafor", birth_date="1990-02-02", postcodes=["HG1 1AA"]))
    assert found(index, rec()) == []  # the old keys of b are gone
    assert index.get("b") is not None


def test_oversized_blocks_are_skipped_except_nhs_number() -> None:
    index = InMemoryCandidateIndex(max_block=3)
    for i in range(5):  # five people in one care home, same birth year
        index.add(f"r{i}", rec(given=[f"Name{i}"], family=f"Family{i}", birth_date=f"1939-0{i + 1}-2{i}"))
    query = rec(given=["Other"], family="Unrelated", birth_date="1939-12-01")
    assert found(index, query) == []
    many = InMemoryCandidateIndex(max_block=1)
    many.add("x", rec(nhs_number=NHS))
    many.add("y", rec(nhs_number=NHS, given=["Bob"]))
    assert found(many, PersonRecord.from_demographics(nhs_number=NHS)) == ["x", "y"]


def test_keys_do_not_contain_raw_names() -> None:
    keys = blocking_keys(rec())
    assert not any("pritchard" in k.lower() or "arthur" in k.lower() for k in keys)
    assert "d|1939|4|11" in keys


def test_keys_are_worked_out_once_per_record_and_follow_its_fields() -> None:
    record = rec(nhs_number=NHS)
    keys = blocking_keys(record)
    assert blocking_keys(record) is keys
    assert keys == blocking_keys(rec(nhs_number=NHS))  # an equal record, built afresh
    stored = record.with_resource_id("p1")
    assert stored.resource_id == "p1" and stored == rec(nhs_number=NHS, resource_id="p1")
    assert blocking_keys(stored) == keys
    swapped = swap_names(record)
    assert swapped is not None and blocking_keys(swapped) == blocking_keys(
        rec(nhs_number=NHS, given=["Pritchard"], family="Arthur")
    )
    assert blocking_keys(rec(postcodes=["LS1 1AA"])) != blocking_keys(rec())
