"""A31 (ADT_A05) updates the person from adt_a28_add_person: new address, recorded death."""

from __future__ import annotations

FIXTURE = "adt_a31_update_person.hl7"


def test_update_person_records_death_and_new_address(mapped, valid):
    added = mapped("adt_a28_add_person.hl7")
    result = mapped(FIXTURE)
    assert result.patient_identifier == added.patient_identifier
    assert result.encounter is None
    assert result.patient["deceasedDateTime"] == "2026-04-05"  # PID-29 wins over PID-30
    assert result.patient["address"][0]["postalCode"] == "NT3 5EF"
    valid(result.patient)
