"""Routing on MSH-9 (incl. MSH-9.3) and the events without their own fixture (A05, A06, A07, A12)."""

from __future__ import annotations

import pytest

from gateway.mappings.hl7v2 import EVENTS, AdtMappingError, map_adt

PID = "PID|1||K9000009^^^Z9X^MR~9990000085^^^NHS^NH||WOOD^Amy^^^Ms^^L||19900101|F"


def pv1(cls: str, visit: str = "", admit: str = "", discharge: str = "") -> str:
    fields = {2: cls, 3: "WARD1^1^1^Z9X", 19: visit, 44: admit, 45: discharge}
    last = max(n for n, v in fields.items() if v)
    return "|".join(["PV1", "1", *(fields.get(n, "") for n in range(2, last + 1))])


def message(mtype: str, *segments: str, version: str = "2.4", control: str = "C1") -> bytes:
    msh = f"MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260601101500||{mtype}|{control}|P|{version}"
    return "\r".join([msh, "EVN||20260601101500", *segments]).encode() + b"\r"


def test_event_table_covers_the_issue_list():
    assert sorted(EVENTS) == sorted(
        ["A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A12", "A13", "A28", "A31", "A40"]
    )
    shared = {t for t, spec in EVENTS.items() if spec.structure == "ADT_A01"}
    assert shared == {"A01", "A04", "A08", "A13"}
    assert {t for t, spec in EVENTS.items() if spec.structure == "ADT_A05"} == {"A05", "A28", "A31"}
    assert EVENTS["A40"].structure == "ADT_A39"


@pytest.mark.parametrize(
    ("mtype", "cls", "status", "klass"),
    [
        ("ADT^A05^ADT_A05", "P", "planned", "PRENC"),
        ("ADT^A06^ADT_A06", "I", "in-progress", "IMP"),
        ("ADT^A07^ADT_A06", "O", "in-progress", "AMB"),
        ("ADT^A12^ADT_A12", "I", "in-progress", "IMP"),
    ],
)
def test_events_map_to_status_and_class(source, valid, mtype, cls, status, klass):
    result = map_adt(message(mtype, PID, pv1(cls, "V9001", "20260601100000")), source=source)
    assert result.encounter is not None
    assert result.encounter["status"] == status
    assert result.encounter["class"]["code"] == klass
    assert result.action == ("cancel-transfer" if "A12" in mtype else "upsert")
    valid(result.encounter)


def test_event_specific_structure_name_is_accepted(source):
    result = map_adt(message("ADT^A08^ADT_A08", PID, pv1("I", "V9002", "20260601100000")), source=source)
    assert result.encounter is not None and result.encounter["status"] == "in-progress"


@pytest.mark.parametrize(
    ("mtype", "version", "code", "fragment"),
    [
        ("ADT^A99^ADT_A01", "2.4", "201", "A99 is not supported"),
        ("ORU^R01^ORU_R01", "2.4", "200", "ORU is not accepted"),
        ("ADT^A01^ADT_A39", "2.4", "200", "structure ADT_A39 does not fit event A01"),
        ("ADT^A01^ADT_A01", "3.0", "203", "version 3.0"),
    ],
)
def test_unsupported_messages_are_rejected_ar(source, mtype, version, code, fragment):
    with pytest.raises(AdtMappingError) as caught:
        map_adt(message(mtype, PID, pv1("I", "V9003"), version=version), source=source)
    assert caught.value.ack_code == "AR"
    assert caught.value.error_code == code
    assert fragment in caught.value.reason


def test_missing_pid_is_an_error_ae(source):
    with pytest.raises(AdtMappingError) as caught:
        map_adt(message("ADT^A01^ADT_A01", pv1("I", "V9004")), source=source)
    assert (caught.value.ack_code, caught.value.location) == ("AE", "PID")


def test_missing_pv1_on_admit_is_an_error_ae(source):
    with pytest.raises(AdtMappingError) as caught:
        map_adt(message("ADT^A01^ADT_A01", PID), source=source)
    assert (caught.value.ack_code, caught.value.location) == ("AE", "PV1")


def test_missing_hospital_number_is_an_error_ae(source):
    pid = "PID|1||9990000085^^^NHS^NH||WOOD^Amy||19900101|F"
    with pytest.raises(AdtMappingError) as caught:
        map_adt(message("ADT^A28^ADT_A05", pid, "PV1|1|N"), source=source)
    assert (caught.value.ack_code, caught.value.location) == ("AE", "PID^1^3")


def test_visit_without_number_gets_a_deterministic_id(source, ids):
    admit = pv1("I", admit="20260601100000")
    discharge = pv1("I", admit="20260601100000", discharge="20260605120000")
    first = map_adt(message("ADT^A01^ADT_A01", PID, admit, control="X1"), source=source)
    later = map_adt(message("ADT^A03^ADT_A03", PID, discharge, control="X2"), source=source)
    assert first.encounter is not None and later.encounter is not None
    assert first.encounter["identifier"] == later.encounter["identifier"]
    assert first.encounter["identifier"][0] == {
        "use": "secondary",
        "system": ids("encounter-id"),
        "value": "derived:K9000009:20260601T090000Z",
    }


def test_visit_without_number_or_admit_time_is_an_error_ae(source):
    with pytest.raises(AdtMappingError) as caught:
        map_adt(message("ADT^A02^ADT_A02", PID, pv1("I")), source=source)
    assert (caught.value.ack_code, caught.value.error_code) == ("AE", "101")


def test_unknown_patient_class_is_unk_with_warning(source, valid):
    result = map_adt(message("ADT^A01^ADT_A01", PID, pv1("Z", "V9005")), source=source)
    assert result.encounter is not None
    assert result.encounter["class"]["code"] == "UNK"
    assert any("PV1-2" in w for w in result.warnings)
    valid(result.encounter)


def test_mapping_is_deterministic(source):
    data = message("ADT^A01^ADT_A01", PID, pv1("I", "V9006", "20260601100000"))
    assert map_adt(data, source=source) == map_adt(data, source=source)
