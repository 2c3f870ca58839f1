"""Epic-style v2.4 A04 (A&E registration) asking for enhanced-mode ACKs, NHS number as ^^^NHS^HN."""

from __future__ import annotations

from gateway.codes import NHS_NUMBER_SYSTEM, ODS_SYSTEM, V3_ACT_CODE

FIXTURE = "adt_a04_epic_v24_enhanced.hl7"


def test_header_asks_for_enhanced_mode(mapped):
    header = mapped(FIXTURE).header
    assert (header.message_code, header.trigger, header.structure) == ("ADT", "A04", "ADT_A01")
    assert header.control_id == "EPC20260714093512001"
    assert header.sending_application == "EPIC"
    assert (header.accept_ack_type, header.application_ack_type) == ("AL", "NE")
    assert header.enhanced_mode


def test_patient_identifiers_take_hn_as_nhs_number(mapped, ids):
    result = mapped(FIXTURE)
    identifiers = {i["system"]: i for i in result.patient["identifier"]}
    assert identifiers[NHS_NUMBER_SYSTEM]["value"] == "9990000018"
    assert identifiers[ids("patient-id")]["value"] == "E1000001"
    assert identifiers[ids("patient-id")]["assigner"] == {"display": "EPI"}
    assert result.patient_identifier == {"system": ids("patient-id"), "value": "E1000001"}
    assert result.nhs_number == "9990000018"
    assert result.warnings == []


def test_patient_demographics(mapped, valid):
    patient = mapped(FIXTURE).patient
    assert patient["name"] == [{"use": "official", "family": "PARKER", "given": ["Alice", "Jane"], "prefix": ["Mrs"]}]
    assert patient["birthDate"] == "1947-03-12"
    assert patient["gender"] == "female"
    assert patient["address"] == [
        {
            "use": "home",
            "line": ["12 Willow Lane", "Flat 2"],
            "city": "Northtown",
            "state": "Northshire",
            "postalCode": "NT1 4AB",
            "country": "GBR",
        }
    ]
    assert patient["telecom"] == [
        {"system": "phone", "value": "01632 960123", "use": "home"},
        {"system": "phone", "value": "07700 900123", "use": "mobile"},
        {"system": "email", "value": "alice.parker@example.org", "use": "home"},
    ]
    assert patient["generalPractitioner"] == [
        {
            "type": "Organization",
            "identifier": {"system": ODS_SYSTEM, "value": "Z99001"},
            "display": "Northtown Medical Practice",
        }
    ]
    valid(patient)


def test_encounter_is_an_emergency_attendance_in_bst(mapped, ids, valid):
    encounter = mapped(FIXTURE).encounter
    assert encounter is not None
    assert encounter["status"] == "in-progress"
    assert encounter["class"] == {"system": V3_ACT_CODE, "code": "EMER", "display": "emergency"}
    assert encounter["identifier"][0]["system"] == ids("encounter-id")
    assert encounter["identifier"][0]["value"] == "V20260714001"
    assert encounter["period"] == {"start": "2026-07-14T09:30:00+01:00"}  # BST
    assert encounter["subject"] == {"identifier": {"system": ids("patient-id"), "value": "E1000001"}}
    assert encounter["serviceProvider"] == {"reference": "Organization/northtown-hospitals"}
    attender = encounter["participant"][0]
    assert attender["type"][0]["coding"][0]["code"] == "ATND"
    assert attender["individual"]["identifier"] == {
        "system": "https://fhir.hl7.org.uk/Id/gmc-number",
        "value": "C123456",
    }
    assert attender["individual"]["display"] == "Dr Rhian Jones"
    assert encounter["reasonCode"] == [{"text": "Shortness of breath"}]
    location = encounter["location"][0]
    assert location["status"] == "active"
    assert location["location"]["identifier"] == {"system": ids("location-id"), "value": "Z9X/ED/MAJ/CUB4"}
    valid(encounter)


def test_provenance_names_message_source_and_operator(mapped, ids, valid):
    provenance = mapped(FIXTURE).provenance
    assert provenance["recorded"] == "2026-07-14T09:35:12+01:00"
    assert provenance["occurredDateTime"] == "2026-07-14T09:30:00+01:00"
    assert provenance["activity"]["coding"][0]["code"] == "A04"
    assert provenance["entity"][0]["what"]["identifier"] == {
        "system": ids("message-id"),
        "value": "EPC20260714093512001",
    }
    assert provenance["agent"][0]["who"]["reference"] == "https://gateway.example.org/source/northtown-pas"
    assert provenance["agent"][0]["onBehalfOf"] == {"reference": "Organization/northtown-hospitals"}
    assert provenance["agent"][1]["type"]["coding"][0]["code"] == "enterer"
    valid(provenance)
