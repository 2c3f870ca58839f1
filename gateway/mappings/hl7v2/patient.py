"""PID (+ PD1) -> FHIR Patient, following the V2-to-FHIR IG PID[Patient] map.

The Patient carries no id: identity decides which stored Patient it is (by NHS number, hospital
number or demographics). Fields the sender leaves empty stay absent, never ``""``.
"""

from __future__ import annotations

from gateway.codes import ODS_SYSTEM, SOURCE_TAG_SYSTEM
from gateway.mappings.hl7v2 import tables
from gateway.mappings.hl7v2.datatypes import address, contact_point, human_name
from gateway.mappings.hl7v2.errors import REQUIRED_FIELD_MISSING, AdtMappingError
from gateway.mappings.hl7v2.fields import Seg
from gateway.mappings.hl7v2.identifiers import PatientIdentifiers, map_identifiers
from gateway.mappings.hl7v2.timestamps import parse_ts
from gateway.mappings.source import SourceSystem
from gateway.types import JSON


def patient_identifiers(pid: Seg, source: SourceSystem, warnings: list[str]) -> PatientIdentifiers:
    """PID-3 first, then PID-2 and PID-4 (where v2.2-era senders put the NHS or old numbers)."""
    labelled = [(f"PID-{n}", cx) for n in (3, 2, 4) for cx in pid.reps(n)]
    ids = map_identifiers(labelled, source, warnings)
    if ids.hospital_number is None:
        raise AdtMappingError(
            "PID-3 holds no hospital number (patient id) from the sender",
            "AE",
            error_code=REQUIRED_FIELD_MISSING,
            location="PID^1^3",
        )
    return ids


def map_patient(
    pid: Seg, pd1: Seg | None, ids: PatientIdentifiers, *, source: SourceSystem, warnings: list[str]
) -> JSON:
    patient: JSON = {
        "resourceType": "Patient",
        "meta": {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": source.source_id}]},
        "identifier": ids.identifiers,
    }
    names = [n for n in (human_name(x) for x in pid.reps(5)) if n]
    if names:
        patient["name"] = names
    telecom = [t for t in (contact_point(x, default_use="home") for x in pid.reps(13)) if t]
    telecom += [t for t in (contact_point(x, default_use="work") for x in pid.reps(14)) if t]
    if telecom:
        patient["telecom"] = telecom
    sex = pid.get(8).upper()
    if sex in tables.GENDER:
        patient["gender"] = tables.GENDER[sex]
    elif sex:
        warnings.append("PID-8 administrative sex code is not in HL7 table 0001; gender left empty")
    birth, warning = parse_ts(pid.get(7), source.timezone, label="PID-7")
    if warning:
        warnings.append(warning)
    if birth is not None:
        patient["birthDate"] = birth.date  # a birth date is a calendar date: no zone shift
    deceased = _deceased(pid, source, warnings)
    if deceased:
        patient.update(deceased)
    addresses = [a for a in (address(x) for x in pid.reps(11)) if a]
    if addresses:
        patient["address"] = addresses
    practice = _gp_practice(pd1)
    if practice:
        patient["generalPractitioner"] = [practice]
    return patient


def _deceased(pid: Seg, source: SourceSystem, warnings: list[str]) -> JSON:
    died, warning = parse_ts(pid.get(29), source.timezone, label="PID-29")
    if warning:
        warnings.append(warning)
    if died is not None:
        return {"deceasedDateTime": died.fhir_datetime()}
    indicator = pid.get(30).upper()
    if indicator in ("Y", "N"):
        return {"deceasedBoolean": indicator == "Y"}
    return {}


def _gp_practice(pd1: Seg | None) -> JSON | None:
    """PD1-3 (XON): the registered GP practice, by ODS code (XON-10 in v2.5, XON-3 before)."""
    if pd1 is None:
        return None
    xon = pd1.first(3)
    code = xon.c(10) or xon.c(3)
    if not code:
        return None
    reference: JSON = {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": code}}
    if xon.c(1):
        reference["display"] = xon.c(1)
    return reference
