"""v2.3 A01 inpatient admission with Z-segments (ZU1, ZPV) between and after standard segments; GMT."""

from __future__ import annotations

from gateway.codes import NHS_NUMBER_SYSTEM

FIXTURE = "adt_a01_v23_zsegments.hl7"


def test_z_segments_are_tolerated(mapped):
    result = mapped(FIXTURE)
    assert result.action == "upsert"
    assert result.header.structure is None  # v2.3 senders leave MSH-9.3 empty
    assert result.warnings == []


def test_patient(mapped, valid):
    patient = mapped(FIXTURE).patient
    assert {"system": NHS_NUMBER_SYSTEM, "value": "9990000026", "use": "official"} in patient["identifier"]
    assert patient["name"][0]["family"] == "OKAFOR"
    assert patient["gender"] == "male"
    valid(patient)


def test_inpatient_encounter_in_gmt(mapped, ids, valid):
    encounter = mapped(FIXTURE).encounter
    assert encounter is not None
    assert encounter["class"]["code"] == "IMP"
    assert encounter["status"] == "in-progress"
    assert encounter["period"] == {"start": "2026-01-15T09:45:00+00:00"}  # GMT
    assert encounter["identifier"][0]["value"] == "IP2026000451"
    assert [p["type"][0]["coding"][0]["code"] for p in encounter["participant"]] == ["ATND", "ADM"]
    assert encounter["hospitalization"]["preAdmissionIdentifier"] == {"system": ids("preadmit-id"), "value": "PRE778"}
    assert encounter["hospitalization"]["admitSource"]["coding"][0]["code"] == "19"
    assert encounter["reasonCode"][0]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/icd-10",
        "code": "J18.9",
        "display": "Pneumonia, unspecified",
    }
    assert encounter["location"][0]["location"]["display"] == "WARD7, room B2, bed 04"
    valid(encounter)
