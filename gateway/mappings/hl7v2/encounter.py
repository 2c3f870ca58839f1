"""PV1/PV2 (+ EVN times) -> FHIR Encounter, following the V2-to-FHIR IG PV1[Encounter] map.

The Encounter names its patient by the hospital number (``subject.identifier``); the intake swaps
that for the linked Patient's id, so no identity lookup happens here. The visit is keyed by PV1-19
(visit number). Senders that leave PV1-19 empty get a key derived from hospital number + admit
time (PV1-44) — both repeat unchanged in every later message about the same visit.
"""

from __future__ import annotations

from datetime import UTC

from gateway.codes import SOURCE_TAG_SYSTEM
from gateway.mappings.hl7v2 import tables
from gateway.mappings.hl7v2.datatypes import codeable_concept, location_reference, practitioner_reference
from gateway.mappings.hl7v2.errors import REQUIRED_FIELD_MISSING, SEGMENT_SEQUENCE_ERROR, AdtMappingError
from gateway.mappings.hl7v2.events import EventSpec
from gateway.mappings.hl7v2.fields import Seg, Segments
from gateway.mappings.hl7v2.timestamps import Timestamp, parse_ts
from gateway.mappings.source import SourceSystem
from gateway.types import JSON

_LOCATION_STATUS = {"planned": "planned", "finished": "completed", "entered-in-error": "completed"}


def map_encounter(
    spec: EventSpec, segments: Segments, subject: JSON, *, source: SourceSystem, warnings: list[str]
) -> JSON | None:
    """The Encounter for this event, or None when the event carries no visit.

    `subject` is the hospital-number identifier ({"system", "value"}). Raises `AdtMappingError`
    (AE) when the event needs a visit and PV1 cannot identify one.
    """
    if spec.encounter == "none":
        return None
    pv1 = segments.one("PV1")
    if pv1 is None:
        if spec.encounter == "required":
            raise AdtMappingError(
                f"{spec.trigger} needs a PV1 segment", "AE", error_code=SEGMENT_SEQUENCE_ERROR, location="PV1"
            )
        return None
    patient_class = pv1.get(2).upper()
    visit_number = pv1.first(19).c(1)
    if spec.encounter == "optional" and not visit_number and patient_class in ("", tables.NO_VISIT_CLASS):
        return None

    def ts(raw: str, label: str) -> Timestamp | None:
        value, warning = parse_ts(raw, source.timezone, label=label)
        if warning:
            warnings.append(warning)
        return value

    admitted = ts(pv1.get(44), "PV1-44")
    start = admitted
    end = ts(pv1.get(45), "PV1-45")
    evn = segments.one("EVN")
    event_time = (ts(evn.get(6), "EVN-6") or ts(evn.get(2), "EVN-2")) if evn else None
    if start is None and spec.trigger in ("A01", "A04") and event_time is not None:
        start = event_time
        warnings.append("PV1-44 admit time empty; period.start taken from the event time (EVN-6/EVN-2)")
    if start is None and spec.trigger == "A05":
        pv2 = segments.one("PV2")
        start = ts(pv2.get(8), "PV2-8") if pv2 else None
    if end is None and spec.trigger == "A03" and event_time is not None:
        end = event_time
        warnings.append("PV1-45 discharge time empty; period.end taken from the event time (EVN-6/EVN-2)")
    if spec.action == "cancel-discharge":
        end = None  # the discharge never happened

    identifier = _visit_identifier(visit_number, admitted, subject, source)
    if identifier is None:
        if spec.encounter == "optional":
            warnings.append("PV1-19 visit number and PV1-44 admit time both empty; visit not recorded")
            return None
        raise AdtMappingError(
            "PV1-19 visit number and PV1-44 admit time are both empty; the visit cannot be identified",
            "AE",
            error_code=REQUIRED_FIELD_MISSING,
            location="PV1^1^19",
        )
    status = spec.status or _derived_status(patient_class, end)
    encounter: JSON = {
        "resourceType": "Encounter",
        "meta": {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": source.source_id}]},
        "identifier": [identifier],
        "status": status,
        "class": _encounter_class(patient_class, warnings),
        "subject": {"identifier": subject},
    }
    _add_coded(encounter, "type", codeable_concept(pv1.first(4), system=tables.V2_0007), many=True)
    _add_coded(encounter, "serviceType", codeable_concept(pv1.first(10), system=tables.V2_0069))
    participants = _participants(pv1, source)
    if participants:
        encounter["participant"] = participants
    period = _period(start, end, warnings)
    if period:
        encounter["period"] = period
    pv2 = segments.one("PV2")
    if pv2 is not None:
        _add_coded(encounter, "reasonCode", codeable_concept(pv2.first(3)), many=True)
    hospitalization = _hospitalization(pv1, source)
    if hospitalization:
        encounter["hospitalization"] = hospitalization
    locations = _locations(pv1, status, source)
    if locations:
        encounter["location"] = locations
    if source.organization:
        encounter["serviceProvider"] = {"reference": source.organization}
    return encounter


def _visit_identifier(
    visit_number: str, admitted: Timestamp | None, subject: JSON, source: SourceSystem
) -> JSON | None:
    system = source.identifier_system("encounter-id")
    vn_type = {"coding": [{"system": tables.V2_0203, "code": "VN"}]}
    if visit_number:
        return {"use": "official", "type": vn_type, "system": system, "value": visit_number}
    if admitted is None or admitted.moment is None:
        return None
    stamp = admitted.moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return {"use": "secondary", "system": system, "value": f"derived:{subject['value']}:{stamp}"}


def _derived_status(patient_class: str, end: Timestamp | None) -> str:
    if end is not None:
        return "finished"
    return "planned" if patient_class == "P" else "in-progress"


def _encounter_class(patient_class: str, warnings: list[str]) -> JSON:
    known = tables.ENCOUNTER_CLASS.get(patient_class)
    if known:
        return {"system": tables.ENCOUNTER_CLASS_SYSTEM, "code": known[0], "display": known[1]}
    # Encounter.class is mandatory in R4: say "unknown" rather than guess.
    if patient_class:
        warnings.append(f"PV1-2 patient class {patient_class!r} has no Encounter.class mapping; recorded as UNK")
    else:
        warnings.append("PV1-2 patient class empty; Encounter.class recorded as UNK")
    return {"system": tables.V3_NULL_FLAVOR, "code": "UNK", "display": "unknown"}


def _period(start: Timestamp | None, end: Timestamp | None, warnings: list[str]) -> JSON:
    period: JSON = {}
    if start is not None:
        period["start"] = start.fhir_datetime()
    if end is not None:
        if start is not None and start.moment and end.moment and end.moment < start.moment:
            warnings.append("PV1-45 discharge time is before PV1-44 admit time; period.end left empty")
        else:
            period["end"] = end.fhir_datetime()
    return period


def _participants(pv1: Seg, source: SourceSystem) -> list[JSON]:
    result: list[JSON] = []
    for field, code, display in tables.PARTICIPANTS:
        for xcn in pv1.reps(field):
            who = practitioner_reference(xcn, source)
            if who:
                kind = {"coding": [{"system": tables.V3_PARTICIPATION_TYPE, "code": code, "display": display}]}
                result.append({"type": [kind], "individual": who})
    return result


def _hospitalization(pv1: Seg, source: SourceSystem) -> JSON:
    result: JSON = {}
    preadmit = pv1.first(5).c(1)
    if preadmit:
        result["preAdmissionIdentifier"] = {"system": source.identifier_system("preadmit-id"), "value": preadmit}
    _add_coded(result, "admitSource", codeable_concept(pv1.first(14), system=tables.V2_0023))
    _add_coded(result, "reAdmission", codeable_concept(pv1.first(13), system=tables.V2_0092))
    _add_coded(result, "dischargeDisposition", codeable_concept(pv1.first(36), system=tables.V2_0112))
    return result


def _locations(pv1: Seg, status: str, source: SourceSystem) -> list[JSON]:
    result: list[JSON] = []
    current = location_reference(pv1.first(3), source)
    if current:
        result.append({"location": current, "status": _LOCATION_STATUS.get(status, "active")})
    prior = location_reference(pv1.first(6), source)
    if prior and (current is None or prior["identifier"] != current["identifier"]):
        result.append({"location": prior, "status": "completed"})
    return result


def _add_coded(target: JSON, key: str, value: JSON | None, *, many: bool = False) -> None:
    if value:
        target[key] = [value] if many else value
