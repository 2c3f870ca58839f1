"""v2.2-era A01: trigger only in EVN-1, LF line ends, minute precision, NHS number in PID-2."""

from __future__ import annotations

from gateway.codes import NHS_NUMBER_SYSTEM

FIXTURE = "adt_a01_v22.hl7"


def test_trigger_comes_from_evn1(mapped):
    result = mapped(FIXTURE)
    assert result.header.version == "2.2"
    assert (result.header.message_code, result.header.trigger) == ("ADT", "A01")
    assert result.warnings == ["MSH-9.2 trigger event missing; taken from EVN-1 (v2.2 style)"]


def test_plain_identifiers_and_pid2_nhs_number(mapped, ids, valid):
    patient = mapped(FIXTURE).patient
    assert patient["identifier"] == [
        {"use": "usual", "system": ids("patient-id"), "value": "H0080008"},
        {"use": "official", "system": NHS_NUMBER_SYSTEM, "value": "9990000077"},
    ]
    assert patient["name"] == [{"family": "TAYLOR", "given": ["Joan", "M"]}]
    valid(patient)


def test_minute_precision_times(mapped, ids, valid):
    result = mapped(FIXTURE)
    assert result.encounter is not None
    assert result.encounter["period"] == {"start": "2026-02-10T14:00:00+00:00"}
    assert result.provenance["recorded"] == "2026-02-10T14:15:00+00:00"
    attender = result.encounter["participant"][0]["individual"]
    assert attender["identifier"] == {"system": ids("practitioner-id"), "value": "1234"}
    valid(result.encounter)
