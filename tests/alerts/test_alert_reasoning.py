"""Visible reasoning (issue 5, item 7): each alert carries why it fired, readable back by the case manager."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.alerts.content import build_communication
from gateway.alerts.reasoning import (
    EXT_ALERT_REASONING,
    AlertReasoning,
    build_reasoning,
    explain,
    from_extension,
    to_extension,
)
from gateway.alerts.registry import CaseManagedEntry
from gateway.alerts.rules import Presentation, detect_presentation
from gateway.codes import V3_ACT_CODE

NOW = datetime(2026, 3, 1, 2, 11, tzinfo=UTC)
ENTRY = CaseManagedEntry(
    patient_id="p1",
    episode_id="ep1",
    episode_type="virtual-ward",
    ward_id="ward-north",
    ward_name="North Virtual Ward",
    care_manager="Practitioner/cm1",
    teams=("CareTeam/team1",),
)


def a04_presentation() -> Presentation:
    enc = {
        "resourceType": "Encounter",
        "id": "enc1",
        "status": "arrived",
        "class": {"system": V3_ACT_CODE, "code": "EMER"},
        "subject": {"reference": "Patient/hosp-123"},
    }
    result = detect_presentation(enc, source_event="A04")
    assert isinstance(result, Presentation)
    return result


def test_reasoning_rides_on_the_communication_and_reads_back() -> None:
    why = build_reasoning(
        a04_presentation(), ENTRY, match_grade="probable", source_message="intake/42", resource_version="3"
    )
    comm = build_communication(ENTRY, a04_presentation(), author_ref="Device/gw", now=NOW, reasoning=why)
    get_fhir_model_class("Communication").model_validate(comm)
    assert comm["extension"][0]["url"] == EXT_ALERT_REASONING
    assert from_extension(comm) == AlertReasoning(
        rule="adt:A04",
        kind="ae-attendance",
        resource="Encounter/enc1/_history/3",
        match_grade="probable",
        episode="EpisodeOfCare/ep1",
        ward="ward-north",
        presenting_patient="Patient/hosp-123",
        source_event="A04",
        source_message="intake/42",
    )


def test_explanation_names_rule_message_grade_and_episode() -> None:
    why = build_reasoning(a04_presentation(), ENTRY, match_grade="certain", source_message="intake/42")
    assert explain(why) == (
        "A&E attendance detected by rule 'adt:A04' from HL7 v2 A04 (message intake/42) on Encounter/enc1; "
        "patient matched as 'certain' to EpisodeOfCare/ep1 on ward ward-north."
    )


def test_absent_values_are_left_out_of_the_extension() -> None:
    why = AlertReasoning("class:EMER", "ae-attendance", "Encounter/e", "certain", "EpisodeOfCare/ep", "w")
    urls = [part["url"] for part in to_extension(why)["extension"]]
    assert urls == ["rule", "kind", "resource", "match-grade", "episode", "ward"]


def test_unknown_match_grade_is_refused() -> None:
    with pytest.raises(ValueError, match="match grade"):
        build_reasoning(a04_presentation(), ENTRY, match_grade="certainly-not")
