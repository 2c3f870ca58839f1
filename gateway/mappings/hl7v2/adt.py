"""The entry point: one raw ADT message -> the FHIR it means (`AdtMapping`).

Pure: no clock, no store, no identity lookup. The intake stores the raw message, calls
`map_adt`, and either applies the result or quarantines the message with the error's reason;
either way it then ACKs with `gateway.mappings.hl7v2.ack`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.mappings.hl7v2.encounter import map_encounter
from gateway.mappings.hl7v2.errors import SEGMENT_SEQUENCE_ERROR, AdtMappingError
from gateway.mappings.hl7v2.events import Action, route
from gateway.mappings.hl7v2.merge import keep_both, merge_from
from gateway.mappings.hl7v2.parse import AdtHeader, ParsedMessage, parse_message
from gateway.mappings.hl7v2.patient import map_patient, patient_identifiers
from gateway.mappings.hl7v2.provenance import provenance_template
from gateway.mappings.source import SourceSystem
from gateway.types import JSON


@dataclass(frozen=True)
class AdtMapping:
    """What one ADT message asks the store to do.

    - `action`: ``upsert`` (patient and, when present, encounter are the full new state),
      ``cancel-admit`` / ``cancel-transfer`` / ``cancel-discharge`` (the encounter is the state
      after the retraction: entered-in-error, back at the earlier location, no end), or ``merge``
      (`patient` survives; `merge_from` names the record it replaces).
    - `patient_identifier`: the hospital number ``{"system", "value"}``; the Encounter's
      `subject.identifier` and the key for per-patient ordering.
    - `provenance`: a Provenance without `target`.
    """

    header: AdtHeader
    action: Action
    patient: JSON
    patient_identifier: JSON
    encounter: JSON | None
    provenance: JSON
    nhs_number: str | None = None
    merge_from: list[JSON] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def event(self) -> str:
        return self.header.trigger


def map_adt(raw: bytes, *, source: SourceSystem) -> AdtMapping:
    """Map a raw HL7 v2 ADT message. Raises `AdtMappingError` (with its ACK code) when it cannot."""
    return map_parsed(parse_message(raw), source=source)


def map_parsed(parsed: ParsedMessage, *, source: SourceSystem) -> AdtMapping:
    """Map an already parsed message (the intake parses first to dedupe on the header)."""
    spec = route(parsed.header)
    segments = parsed.segments
    warnings = list(parsed.warnings)
    pid = segments.one("PID")
    if pid is None:
        raise AdtMappingError("message has no PID segment", "AE", error_code=SEGMENT_SEQUENCE_ERROR, location="PID")
    ids = patient_identifiers(pid, source, warnings)
    assert ids.hospital_number is not None
    patient = map_patient(pid, segments.one("PD1"), ids, source=source, warnings=warnings)
    old: list[JSON] = []
    if spec.action == "merge":
        old = merge_from(segments, source=source, warnings=warnings)
        patient["identifier"] = keep_both(patient["identifier"], old, warnings)
    encounter = map_encounter(spec, segments, ids.hospital_number, source=source, warnings=warnings)
    provenance = provenance_template(parsed.header, spec, segments, source=source, warnings=warnings)
    return AdtMapping(
        header=parsed.header,
        action=spec.action,
        patient=patient,
        patient_identifier=ids.hospital_number,
        encounter=encounter,
        provenance=provenance,
        nhs_number=ids.nhs_number,
        merge_from=old,
        warnings=warnings,
    )
