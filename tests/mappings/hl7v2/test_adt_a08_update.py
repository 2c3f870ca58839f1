"""A08 demographic update with no visit (PV1-2 N) and an NHS number that fails Modulus 11."""

from __future__ import annotations

from gateway.codes import NHS_NUMBER_SYSTEM

FIXTURE = "adt_a08_update.hl7"


def test_invalid_nhs_number_is_kept_out_and_reported(mapped):
    result = mapped(FIXTURE)
    assert all(i["system"] != NHS_NUMBER_SYSTEM for i in result.patient["identifier"])
    assert result.nhs_number is None
    assert result.warnings == ["PID-3: NHS number not used (NHS number fails the Modulus 11 check digit)"]
    assert "9990000019" not in " ".join(result.warnings)  # no identifiers in warnings


def test_update_carries_names_and_contacts_without_an_encounter(mapped, valid):
    result = mapped(FIXTURE)
    assert result.action == "upsert"
    assert result.encounter is None
    assert [n.get("use") for n in result.patient["name"]] == ["official", "nickname"]
    assert result.patient["telecom"] == [
        {"system": "phone", "value": "07700 900777", "use": "mobile"},
        {"system": "phone", "value": "01632 960999", "use": "work"},
    ]
    assert result.patient["address"][0]["postalCode"] == "WP3 9QQ"
    valid(result.patient)
