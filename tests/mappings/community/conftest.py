"""Shared fixtures for the community-provider mapping tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.mappings.source import SourceSystem
from gateway.paths import FIXTURES_DIR
from gateway.types import JSON


@pytest.fixture(scope="session")
def source() -> SourceSystem:
    return SourceSystem(
        source_id="cp-northeast",
        name="North East Community Health (synthetic)",
        kind="community",
        base_url="https://gateway.example.org",
        organization="Organization/cp-northeast",
    )


@pytest.fixture(scope="session")
def load() -> Callable[[str], Any]:
    """Parse a JSON file of fixtures/community/ (a fresh copy each call)."""

    def read(name: str) -> Any:
        return json.loads((FIXTURES_DIR / "community" / name).read_text(encoding="utf-8"))

    return read


@pytest.fixture(scope="session")
def assert_valid_r4() -> Callable[[JSON], None]:
    def check(resource: JSON) -> None:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)

    return check
