"""Shared fixtures for the CLD mapping tests: the source system and helpers to map fixture files.

Helpers are fixtures (not an imported module) so the tests need no package `__init__` files.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.mappings.social_care import RowResult, map_row, read_csv, read_json
from gateway.mappings.source import SourceSystem
from gateway.paths import FIXTURES_DIR
from gateway.types import JSON

MapFile = Callable[[str], list[RowResult]]


@pytest.fixture(scope="session")
def source() -> SourceSystem:
    return SourceSystem(
        source_id="la-e99999999",
        name="Synthetic County Council",
        kind="social-care",
        base_url="https://gateway.example.org",
        organization="Organization/la-e99999999",
    )


@pytest.fixture(scope="session")
def map_file(source: SourceSystem) -> MapFile:
    """Read and map one file of fixtures/social_care/."""

    def run(name: str) -> list[RowResult]:
        data = (FIXTURES_DIR / "social_care" / name).read_bytes()
        rows = read_json(data) if name.endswith(".json") else read_csv(data)
        return [map_row(row, source=source) for row in rows]

    return run


@pytest.fixture(scope="session")
def assert_valid_r4() -> Callable[[JSON], None]:
    """Raises if a resource is not structurally valid FHIR (R4B models, wire-compatible with R4)."""

    def check(resource: JSON) -> None:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)

    return check


@pytest.fixture(scope="session")
def by_type() -> Callable[[tuple[JSON, ...], str], JSON]:
    """The one resource of a type among a row's resources."""

    def pick(resources: tuple[JSON, ...], resource_type: str) -> JSON:
        matches = [r for r in resources if r["resourceType"] == resource_type]
        assert len(matches) == 1, f"expected one {resource_type}, got {len(matches)}"
        return matches[0]

    return pick
