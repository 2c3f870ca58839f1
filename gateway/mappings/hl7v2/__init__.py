"""Hospital HL7 v2 ADT -> FHIR R4 (pure), and the ACKs that answer it.

parsed = parse_message(raw)                 # header for dedupe/ACK, even if mapping fails
mapping = map_parsed(parsed, source=source)  # or map_adt(raw, source=source)
ack = build_ack(parsed.header, "AA", now=now)
"""

from __future__ import annotations

from gateway.mappings.hl7v2.ack import ack_code, ack_wanted, build_ack, build_unparseable_ack
from gateway.mappings.hl7v2.adt import AdtMapping, map_adt, map_parsed
from gateway.mappings.hl7v2.errors import AckCode, AdtMappingError, Hl7ParseError
from gateway.mappings.hl7v2.events import EVENTS, Action, EventSpec
from gateway.mappings.hl7v2.parse import AdtHeader, ParsedMessage, parse_message
from gateway.mappings.hl7v2.provenance import message_identifier

__all__ = [
    "EVENTS",
    "AckCode",
    "Action",
    "AdtHeader",
    "AdtMapping",
    "AdtMappingError",
    "EventSpec",
    "Hl7ParseError",
    "ParsedMessage",
    "ack_code",
    "ack_wanted",
    "build_ack",
    "build_unparseable_ack",
    "map_adt",
    "map_parsed",
    "message_identifier",
    "parse_message",
]
