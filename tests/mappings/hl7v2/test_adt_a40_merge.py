"""A40 (ADT_A39): K5000099 is merged into K5000005; both identifier sets survive."""

from __future__ import annotations

from gateway.codes import NHS_NUMBER_SYSTEM

FIXTURE = "adt_a40_merge.hl7"


def test_merge_names_the_record_it_replaces(mapped, ids):
    result = mapped(FIXTURE)
    assert result.action == "merge"
    assert result.encounter is None
    assert result.patient_identifier == {"system": ids("patient-id"), "value": "K5000005"}
    assert [(i["system"], i["value"], i["use"]) for i in result.merge_from] == [(ids("patient-id"), "K5000099", "old")]


def test_surviving_patient_keeps_both_identifier_sets(mapped, ids, valid):
    patient = mapped(FIXTURE).patient
    values = [(i["system"], i["value"], i["use"]) for i in patient["identifier"]]
    assert values == [
        (ids("patient-id"), "K5000005", "usual"),
        (NHS_NUMBER_SYSTEM, "9990000042", "official"),
        (ids("patient-id"), "K5000099", "old"),
    ]
    valid(patient)
