"""A40 (ADT_A39): the merged-away record's identifiers (MRG-1, and MRG-4 from v2.3 senders).

Nothing is dropped: the surviving Patient keeps the old identifiers as ``use: old`` and the store
gets them separately (`merge_from`) to find the old record and link the two with
`Patient.link` replaced-by / replaces.
"""

from __future__ import annotations

from gateway.codes import NHS_NUMBER_SYSTEM
from gateway.mappings.hl7v2.errors import REQUIRED_FIELD_MISSING, SEGMENT_SEQUENCE_ERROR, AdtMappingError
from gateway.mappings.hl7v2.fields import Segments
from gateway.mappings.hl7v2.identifiers import map_identifiers
from gateway.mappings.source import SourceSystem
from gateway.types import JSON


def merge_from(segments: Segments, *, source: SourceSystem, warnings: list[str]) -> list[JSON]:
    if len(segments.all("PID")) > 1 or len(segments.all("MRG")) > 1:
        raise AdtMappingError(
            "A40 with more than one PID/MRG pair is not supported; send one merge per message",
            "AE",
            error_code=SEGMENT_SEQUENCE_ERROR,
            location="MRG",
        )
    mrg = segments.one("MRG")
    if mrg is None:
        raise AdtMappingError("A40 needs an MRG segment", "AE", error_code=SEGMENT_SEQUENCE_ERROR, location="MRG")
    labelled = [(f"MRG-{n}", cx) for n in (1, 4) for cx in mrg.reps(n)]
    ids = map_identifiers(labelled, source, warnings, use="old")
    if ids.hospital_number is None:
        raise AdtMappingError(
            "MRG-1 holds no prior hospital number to merge from",
            "AE",
            error_code=REQUIRED_FIELD_MISSING,
            location="MRG^1^1",
        )
    return ids.identifiers


def keep_both(surviving: list[JSON], merged: list[JSON], warnings: list[str]) -> list[JSON]:
    """The surviving identifiers plus every merged-away one not already there (as ``old``)."""
    present = {(i["system"], i["value"]) for i in surviving}
    has_nhs = any(i["system"] == NHS_NUMBER_SYSTEM for i in surviving)
    result = list(surviving)
    for identifier in merged:
        if (identifier["system"], identifier["value"]) in present:
            continue
        if identifier["system"] == NHS_NUMBER_SYSTEM and has_nhs:
            warnings.append("MRG-1 NHS number differs from the surviving record's; kept as an old identifier")
        result.append(identifier)
    return result
