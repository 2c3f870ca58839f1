"""Which ADT events the gateway accepts, and what each one means for the record.

One row per trigger event. Routing checks MSH-9 (message code, trigger, and the structure in
MSH-9.3 when the sender fills it) against this table before any mapping starts, so an unsupported
message is refused (AR) without touching its content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.mappings.hl7v2.errors import (
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_VERSION_ID,
    AdtMappingError,
)
from gateway.mappings.hl7v2.parse import AdtHeader, version_tuple

Action = Literal["upsert", "cancel-admit", "cancel-transfer", "cancel-discharge", "merge"]
EncounterRule = Literal["required", "optional", "none"]


@dataclass(frozen=True)
class EventSpec:
    trigger: str
    display: str  # HL7 table 0003 display, used as Provenance.activity
    structure: str  # HL7 table 0354 message structure (v2.5)
    action: Action
    encounter: EncounterRule  # must the message describe a visit?
    status: str | None  # Encounter.status; None = derived from the visit's dates


EVENTS: dict[str, EventSpec] = {
    spec.trigger: spec
    for spec in (
        EventSpec("A01", "ADT/ACK - Admit/visit notification", "ADT_A01", "upsert", "required", "in-progress"),
        EventSpec("A02", "ADT/ACK - Transfer a patient", "ADT_A02", "upsert", "required", "in-progress"),
        EventSpec("A03", "ADT/ACK - Discharge/end visit", "ADT_A03", "upsert", "required", "finished"),
        EventSpec("A04", "ADT/ACK - Register a patient", "ADT_A01", "upsert", "required", "in-progress"),
        EventSpec("A05", "ADT/ACK - Pre-admit a patient", "ADT_A05", "upsert", "required", "planned"),
        EventSpec(
            "A06", "ADT/ACK - Change an outpatient to an inpatient", "ADT_A06", "upsert", "required", "in-progress"
        ),
        EventSpec(
            "A07", "ADT/ACK - Change an inpatient to an outpatient", "ADT_A06", "upsert", "required", "in-progress"
        ),
        EventSpec("A08", "ADT/ACK - Update patient information", "ADT_A01", "upsert", "optional", None),
        EventSpec(
            "A11",
            "ADT/ACK - Cancel admit/visit notification",
            "ADT_A09",
            "cancel-admit",
            "required",
            "entered-in-error",
        ),
        EventSpec("A12", "ADT/ACK - Cancel transfer", "ADT_A12", "cancel-transfer", "required", "in-progress"),
        EventSpec(
            "A13", "ADT/ACK - Cancel discharge/end visit", "ADT_A01", "cancel-discharge", "required", "in-progress"
        ),
        EventSpec("A28", "ADT/ACK - Add person information", "ADT_A05", "upsert", "none", None),
        EventSpec("A31", "ADT/ACK - Update person information", "ADT_A05", "upsert", "none", None),
        EventSpec("A40", "ADT/ACK - Merge patient - patient identifier list", "ADT_A39", "merge", "none", None),
    )
}


def route(header: AdtHeader) -> EventSpec:
    """The event row for a message, or `AdtMappingError` (AR) saying why it is refused."""
    if not header.control_id:
        raise AdtMappingError(
            "MSH-10 message control id is empty", "AR", error_code=REQUIRED_FIELD_MISSING, location="MSH^1^10"
        )
    if version_tuple(header.version)[0] != 2:
        raise AdtMappingError(
            f"HL7 version {header.version or '(blank)'} is not supported (2.x only)",
            "AR",
            error_code=UNSUPPORTED_VERSION_ID,
            location="MSH^1^12",
        )
    if header.message_code != "ADT":
        raise AdtMappingError(
            f"message type {header.message_code or '(blank)'} is not accepted (ADT only)",
            "AR",
            error_code=UNSUPPORTED_MESSAGE_TYPE,
            location="MSH^1^9",
        )
    spec = EVENTS.get(header.trigger)
    if spec is None:
        raise AdtMappingError(
            f"ADT event {header.trigger or '(blank)'} is not supported",
            "AR",
            error_code=UNSUPPORTED_EVENT_CODE,
            location="MSH^1^9",
        )
    # Some v2.3.1 senders name the structure after the event itself (ADT_A08): same segments.
    if header.structure and header.structure not in (spec.structure, f"ADT_{spec.trigger}"):
        raise AdtMappingError(
            f"message structure {header.structure} does not fit event {spec.trigger} ({spec.structure})",
            "AR",
            error_code=UNSUPPORTED_MESSAGE_TYPE,
            location="MSH^1^9",
        )
    return spec
