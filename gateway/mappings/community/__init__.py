"""Community providers (community nursing, voluntary sector, out-of-hours, NHS 111) → FHIR."""

from __future__ import annotations

from gateway.mappings.community.bundle import SUPPORTED_TYPES, BundleResult, EntryResult, map_bundle
from gateway.mappings.community.mapping import Accepted, RecordResult, Rejected, map_record, map_records
from gateway.mappings.community.reader import UnreadableRecords, read_records
from gateway.mappings.community.records import (
    RECORD_ADAPTER,
    Contact,
    Person,
    Practitioner,
    Referral,
    TeamMember,
    TeamMembership,
    json_schema,
)

__all__ = [
    "RECORD_ADAPTER",
    "SUPPORTED_TYPES",
    "Accepted",
    "BundleResult",
    "Contact",
    "EntryResult",
    "Person",
    "Practitioner",
    "RecordResult",
    "Referral",
    "Rejected",
    "TeamMember",
    "TeamMembership",
    "UnreadableRecords",
    "json_schema",
    "map_bundle",
    "map_record",
    "map_records",
    "read_records",
]
