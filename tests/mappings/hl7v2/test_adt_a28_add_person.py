"""A28 (ADT_A05) adds a person with no visit."""

from __future__ import annotations

FIXTURE = "adt_a28_add_person.hl7"


def test_add_person_maps_patient_only(mapped, valid):
    result = mapped(FIXTURE)
    assert result.header.structure == "ADT_A05"
    assert result.action == "upsert"
    assert result.encounter is None
    assert result.nhs_number == "9990000050"
    assert result.patient["address"][0]["line"] == ["21 Chapel Street"]
    assert result.provenance["activity"]["coding"][0]["code"] == "A28"
    valid(result.patient)
