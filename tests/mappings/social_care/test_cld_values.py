"""The CLD defined value lists live as CodeSystems in profiles/ and are matched spelling-insensitively."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.valueset import ValueSet

from gateway.codes import CANONICAL_BASE
from gateway.mappings.social_care import columns
from gateway.mappings.social_care.values import defined_list, defined_lists, match_key
from gateway.paths import PROFILES_DIR


def test_every_coded_column_has_a_code_system_with_a_value_set() -> None:
    for column in columns.CODED:
        dl = defined_list(column)
        assert dl.system == f"{CANONICAL_BASE}/CodeSystem/asc-{column.lower().replace('_', '-')}"
        assert dl.concepts, column
        vs_file = PROFILES_DIR / f"ValueSet-asc-{column.lower().replace('_', '-')}.json"
        vs = ValueSet.model_validate(json.loads(vs_file.read_text()))
        assert vs.compose.include[0].system == dl.system


def test_code_system_files_are_valid_fhir_and_counts_match() -> None:
    files = sorted(PROFILES_DIR.glob("CodeSystem-asc-*.json"))
    assert len(files) == len(defined_lists())
    for f in files:
        doc = json.loads(f.read_text())
        cs = CodeSystem.model_validate(doc)
        assert cs.count == len(doc["concept"])
        assert cs.url.endswith("/" + doc["id"])


@pytest.mark.parametrize(
    ("column", "typed", "display"),
    [
        ("Event_Outcome", "NFA - Other", "NFA- Other"),
        ("Event_Outcome", "Admitted to Hospital", "Admitted to hospital"),
        ("Event_Outcome", "NFA - Support ended – other reason", "NFA - Support ended: Other reason"),
        (
            "Event_Outcome",
            "NFA - Self-funded client (inc. 12wk disregard)",
            "NFA - Self-funded client (Inc. 12wk disregard)",
        ),
        ("Delivery_Mechanism", "CASSR Commissioned support", "CASSR Commissioned Support"),
        ("Service_Type", "long term support:community", "Long Term Support: Community"),
        ("Request_Route_of_Access", "Community/Other route", "Community / Other route"),
    ],
)
def test_real_world_spellings_resolve_to_the_defined_value(column: str, typed: str, display: str) -> None:
    concept = defined_list(column).resolve(typed)
    assert concept is not None and concept.display == display


def test_unknown_value_does_not_resolve() -> None:
    assert defined_list("Service_Type").resolve("Long Term Support: Hotel") is None
    assert match_key(" Long-Term ") == "longterm"


def test_mapping_properties_are_data() -> None:
    female = defined_list("Gender").resolve("Female")
    assert female is not None and female.properties["fhir-gender"] == "female"
    carer = defined_list("Client_Type").resolve("Carer known by association")
    assert carer is not None and carer.properties["is-carer"] is True
    ends = defined_list("Event_Outcome").resolve("NFA - Deceased")
    assert ends is not None and ends.properties["ends-event"] is True
    goes_on = defined_list("Event_Outcome").resolve("Progress to Assessment")
    assert goes_on is not None and goes_on.properties["ends-event"] is False
