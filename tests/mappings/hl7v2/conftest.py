"""Shared fixtures for the HL7 v2 mapping tests: the sending system, fixture loading, validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.mappings.hl7v2 import AdtMapping, map_adt
from gateway.mappings.source import SourceSystem
from gateway.types import JSON

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "hl7v2"


@pytest.fixture
def source() -> SourceSystem:
    return SourceSystem(
        source_id="northtown-pas",
        name="Northtown Hospitals PAS",
        kind="hospital",
        base_url="https://gateway.example.org",
        organization="Organization/northtown-hospitals",
    )


@pytest.fixture
def raw() -> Callable[[str], bytes]:
    def load(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return load


@pytest.fixture
def mapped(raw: Callable[[str], bytes], source: SourceSystem) -> Callable[[str], AdtMapping]:
    def run(name: str) -> AdtMapping:
        return map_adt(raw(name), source=source)

    return run


@pytest.fixture
def valid() -> Callable[[JSON], None]:
    """Assert a resource parses as an R4B model (Provenance gets a placeholder target)."""

    def check(resource: JSON) -> None:
        body = dict(resource)
        if body["resourceType"] == "Provenance" and "target" not in body:
            body["target"] = [{"reference": "Patient/placeholder"}]
        model = get_fhir_model_class(body["resourceType"]).model_validate(body)
        assert model.model_dump(mode="json", exclude_none=True)["resourceType"] == body["resourceType"]

    return check


@pytest.fixture
def ids(source: SourceSystem) -> Callable[[str], str]:
    """The identifier system for a kind (patient-id, encounter-id …) of the test source."""
    return source.identifier_system
