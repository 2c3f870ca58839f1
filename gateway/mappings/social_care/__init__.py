"""Local-authority adult social care (ASC Client Level Data) → FHIR: readers, row checks, mapping."""

from __future__ import annotations

from gateway.mappings.social_care.event_key import event_key
from gateway.mappings.social_care.mapping import map_record, map_row
from gateway.mappings.social_care.readers import SourceRow, UnreadableExtract, read_csv, read_json, rows_from_records
from gateway.mappings.social_care.record import CldRecord, Reason, parse_row
from gateway.mappings.social_care.result import Accepted, Rejected, RowResult, report_entry, totals
from gateway.mappings.social_care.values import defined_list, defined_lists

__all__ = [
    "Accepted",
    "CldRecord",
    "Reason",
    "Rejected",
    "RowResult",
    "SourceRow",
    "UnreadableExtract",
    "defined_list",
    "defined_lists",
    "event_key",
    "map_record",
    "map_row",
    "parse_row",
    "read_csv",
    "read_json",
    "report_entry",
    "rows_from_records",
    "totals",
]
