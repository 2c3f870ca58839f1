"""Kick-off parameters of a Bulk Data export (https://hl7.org/fhir/uv/bulkdata/export.html#query-parameters):
pure parsing, strict by default, lenient on request."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.fhir.errors import FhirError
from gateway.fhir.export.params import NDJSON, ExportParams, parse_export_params


def test_defaults_and_supported_parameters() -> None:
    assert parse_export_params([], lenient=False) == ExportParams()
    parsed = parse_export_params(
        [("_type", "Patient, Encounter"), ("_type", "Patient,Observation"), ("_since", "2026-01-02T03:04:05+01:00")],
        lenient=False,
    )
    assert parsed.types == ("Patient", "Encounter", "Observation")
    assert parsed.since == datetime(2026, 1, 2, 2, 4, 5)
    for alias in (NDJSON, "application/ndjson", "ndjson"):
        assert parse_export_params([("_outputFormat", alias)], lenient=False).output_format == NDJSON


@pytest.mark.parametrize(
    "items",
    [
        [("_outputFormat", "application/json")],
        [("_outputFormat", "ndjson"), ("_outputFormat", "ndjson")],
        [("_since", "last week")],
        [("_since", "2026-01-01"), ("_since", "2026-02-01")],
        [("_type", "Unicorn")],
        [("_type", ",")],
        [("_typeFilter", "Patient?gender=male")],
        [("patient", "Patient/1")],
        [("includeAssociatedData", "LatestProvenanceResources")],
    ],
)
def test_strict_refusals(items: list[tuple[str, str]]) -> None:
    with pytest.raises(FhirError) as err:
        parse_export_params(items, lenient=False)
    assert err.value.status == 400


def test_lenient_ignores_what_it_cannot_do_and_says_so() -> None:
    parsed = parse_export_params([("_elements", "id"), ("_type", "Patient,Unicorn")], lenient=True)
    assert parsed.types == ("Patient",)
    assert [w["severity"] for w in parsed.warnings] == ["warning", "warning"]
    with pytest.raises(FhirError):  # a bad value of a supported parameter is still an error
        parse_export_params([("_since", "soon")], lenient=True)


def test_round_trip_through_the_job_row() -> None:
    params = ExportParams(types=("Patient",), since=datetime(2026, 5, 1, 12, 0))
    assert ExportParams.from_json(params.to_json()) == params
