"""Patient/$match input and output (gateway/identity/match_bundle.py), R4 patient-operation-match."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from gateway.fhir.errors import FhirError
from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.match_bundle import (
    MATCH_GRADE_EXTENSION,
    build_match_bundle,
    parse_match_parameters,
    run_match,
)
from gateway.identity.matcher import Grade, Matcher
from gateway.identity.person import PersonRecord

BASE_URL = "https://gateway.example.org/fhir"


def patient(pid: str, given: str, family: str = "Hartley", birth: str = "1948-05-17") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": "female",
        "address": [{"postalCode": "LS6 2QT"}],
    }


STORED = {
    "same": patient("same", "Margaret"),
    "nick": patient("nick", "Peggy"),
    "twin": patient("twin", "Susan"),
    "other": patient("other", "Ngozi", "Okafor", "1990-02-02"),
}


def index() -> InMemoryCandidateIndex:
    idx = InMemoryCandidateIndex()
    for pid, resource in STORED.items():
        idx.add(pid, PersonRecord.from_patient(resource))
    return idx


def params(*extra: dict[str, Any], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    query = resource if resource is not None else patient("q", "Margaret")
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": query}, *extra]}


def run(parameters: dict[str, Any]) -> dict[str, Any]:
    return run_match(parameters, index=index(), matcher=Matcher(), resource_for=STORED.__getitem__, base_url=BASE_URL)


def test_match_bundle_shape() -> None:
    bundle = run(params())
    Bundle.model_validate(bundle)  # a valid R4(B) Bundle
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 3
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert ids == ["same", "nick", "twin"]
    first = bundle["entry"][0]
    assert first["fullUrl"] == f"{BASE_URL}/Patient/same"
    assert first["search"]["mode"] == "match"
    assert 0.99 < first["search"]["score"] <= 1
    grades = [e["search"]["extension"][0] for e in bundle["entry"]]
    assert all(g["url"] == MATCH_GRADE_EXTENSION for g in grades)
    assert [g["valueCode"] for g in grades] == ["certain", "certain", "possible"]
    scores = [e["search"]["score"] for e in bundle["entry"]]
    assert scores[0] >= scores[1]


def test_count_limits_the_entries() -> None:
    bundle = run(params({"name": "count", "valueInteger": 1}))
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["same"]


def test_only_certain_matches_returns_nothing_when_several_are_certain() -> None:
    bundle = run(params({"name": "onlyCertainMatches", "valueBoolean": True}))
    Bundle.model_validate(bundle)
    assert bundle["total"] == 0
    assert [e["search"]["mode"] for e in bundle["entry"]] == ["outcome"]
    assert bundle["entry"][0]["resource"]["issue"][0]["code"] == "multiple-matches"


def test_only_certain_matches_returns_the_single_certain_one() -> None:
    query = patient("q", "Susan")
    bundle = run(params({"name": "onlyCertainMatches", "valueBoolean": True}, resource=query))
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["twin"]
    assert bundle["entry"][0]["search"]["extension"][0]["valueCode"] == "certain"


def test_no_match_gives_an_empty_searchset() -> None:
    bundle = run(params(resource=patient("q", "Kofi", "Boateng", "2011-01-01")))
    assert bundle == {"resourceType": "Bundle", "type": "searchset", "total": 0}


def test_parse_reads_all_three_parameters() -> None:
    request = parse_match_parameters(
        params({"name": "onlyCertainMatches", "valueBoolean": True}, {"name": "count", "valuePositiveInt": 3})
    )
    assert request.only_certain_matches is True
    assert request.count == 3
    assert request.resource["resourceType"] == "Patient"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"resourceType": "Patient"}, "Parameters"),
        ({"resourceType": "Parameters", "parameter": []}, "resource"),
        (params(resource={"resourceType": "Observation"}), "must be a Patient"),
        (params({"name": "count", "valueInteger": 0}), "count"),
        (params({"name": "count", "valueString": "5"}), "count"),
        (params({"name": "onlyCertainMatches", "valueString": "yes"}), "onlyCertainMatches"),
        (params({"name": "colour", "valueString": "red"}), "unknown"),
        (params({"name": "count", "valueInteger": 1}, {"name": "count", "valueInteger": 2}), "more than once"),
    ],
)
def test_bad_parameters_raise_clear_400s(parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(FhirError) as caught:
        parse_match_parameters(parameters)
    assert caught.value.status == 400
    assert message in caught.value.diagnostics
    assert caught.value.outcome()["resourceType"] == "OperationOutcome"


def test_build_bundle_without_base_url_has_no_full_url() -> None:
    results = Matcher().match(PersonRecord.from_patient(patient("q", "Margaret")), index())
    bundle = build_match_bundle(results, resource_for=STORED.__getitem__)
    assert "fullUrl" not in bundle["entry"][0]
    assert results[0].grade is Grade.CERTAIN
