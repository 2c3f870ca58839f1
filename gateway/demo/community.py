"""Writing a community provider's records (fixtures/community format) into the store, with Provenance.

The gateway has no community intake service yet, so the demo does what one would: map each record
with the real mapping (`gateway.mappings.community`), write it by conditional update on its first
identifier (re-sending writes nothing new), and record where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.codes import NHS_NUMBER_SYSTEM
from gateway.intake.writes import source_provenance, upsert_by_identifier, upsert_patient
from gateway.mappings.community import Accepted, map_records, read_records
from gateway.mappings.source import SourceSystem
from gateway.store.api import Store, instant
from gateway.types import JSON


@dataclass
class CommunityReport:
    accepted: int = 0
    rejected: int = 0
    changed: int = 0
    reasons: list[str] = field(default_factory=list)


def ingest_community(
    store: Store, data: bytes, *, source: SourceSystem, now: datetime | None = None
) -> CommunityReport:
    """Map and write every record; a record that changed something gets one Provenance."""
    at = instant((now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None))
    report = CommunityReport()
    with store.writer() as uow:
        for result in map_records(read_records(data), source=source):
            if not isinstance(result, Accepted):
                report.rejected += 1
                report.reasons += [f"record {result.record_number}: {r}" for r in result.reasons]
                continue
            report.accepted += 1
            patient, *rest = result.resources
            identifiers = patient.get("identifier") or []
            keys = identifiers[:1] + [i for i in identifiers[1:] if i.get("system") == NHS_NUMBER_SYSTEM]
            before = len(uow.written)
            person_ref = f"Patient/{upsert_patient(uow, patient, keys).id}"
            for res in rest:
                upsert_by_identifier(uow, _point_at(res, person_ref))
            fresh = uow.written[before:]
            if fresh:
                report.changed += 1
                uow.create(
                    source_provenance(
                        source,
                        fresh,
                        recorded=at,
                        entity_kind="record",
                        entity_value=str(result.record_number),
                        display=f"Community record {result.record_number}",
                    )
                )
    return report


def _point_at(res: JSON, person_ref: str) -> JSON:
    """Logical references to the record's person gain the stored Patient's id."""
    out = dict(res)
    for key in ("subject", "for", "patient"):
        ref = out.get(key)
        if isinstance(ref, dict) and "reference" not in ref and isinstance(ref.get("identifier"), dict):
            out[key] = {**ref, "reference": person_ref}
    return out
