"""MSH/EVN -> a Provenance template (everything but `target`).

The store fills `target` with the versions it writes, so one template covers the Patient and the
Encounter of a message. `recorded` is the sender's message time (MSH-7), not our clock: mapping is
pure and replaying the same message yields the same Provenance.
"""

from __future__ import annotations

from gateway.mappings.hl7v2 import tables
from gateway.mappings.hl7v2.datatypes import practitioner_reference
from gateway.mappings.hl7v2.errors import REQUIRED_FIELD_MISSING, AdtMappingError
from gateway.mappings.hl7v2.events import EventSpec
from gateway.mappings.hl7v2.fields import Segments
from gateway.mappings.hl7v2.parse import AdtHeader
from gateway.mappings.hl7v2.timestamps import parse_ts
from gateway.mappings.source import SourceSystem
from gateway.types import JSON


def message_identifier(header: AdtHeader, source: SourceSystem) -> JSON:
    """How Provenance (and the intake's receipts) name an input message."""
    return {"system": source.identifier_system("message-id"), "value": header.control_id}


def provenance_template(
    header: AdtHeader, spec: EventSpec, segments: Segments, *, source: SourceSystem, warnings: list[str]
) -> JSON:
    evn = segments.one("EVN")
    recorded, warning = parse_ts(header.message_time, source.timezone, label="MSH-7")
    if warning:
        warnings.append(warning)
    if (recorded is None or recorded.moment is None) and evn is not None:
        recorded, warning = parse_ts(evn.get(2), source.timezone, label="EVN-2")
        if warning:
            warnings.append(warning)
    instant = recorded.fhir_instant() if recorded else None
    if instant is None:
        raise AdtMappingError(
            "MSH-7 message date/time (with a time of day) is missing",
            "AE",
            error_code=REQUIRED_FIELD_MISSING,
            location="MSH^1^7",
        )
    agent: JSON = {
        "type": {"coding": [{"system": tables.PROVENANCE_AGENT_TYPE, "code": "author", "display": "Author"}]},
        "who": {"reference": source.device_reference, "type": "Device", "display": source.name},
    }
    if source.organization:
        agent["onBehalfOf"] = {"reference": source.organization}
    provenance: JSON = {
        "resourceType": "Provenance",
        "recorded": instant,
        "activity": {"coding": [{"system": tables.V2_0003, "code": spec.trigger, "display": spec.display}]},
        "agent": [agent],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": message_identifier(header, source),
                    "display": f"HL7 v{header.version} {header.message_code}^{header.trigger}",
                },
            }
        ],
    }
    if evn is not None:
        occurred, warning = parse_ts(evn.get(6), source.timezone, label="EVN-6")
        if warning:
            warnings.append(warning)
        if occurred is not None:
            provenance["occurredDateTime"] = occurred.fhir_datetime()
        operator = practitioner_reference(evn.first(5), source)
        if operator:
            enterer = {"coding": [{"system": tables.PROVENANCE_AGENT_TYPE, "code": "enterer", "display": "Enterer"}]}
            provenance["agent"].append({"type": enterer, "who": operator})
    return provenance
