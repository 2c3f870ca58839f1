"""Community-provider intake: JSON contact records or a FHIR transaction/batch Bundle, reported per record.

Each accepted record is written in its own transaction (its Patient resolved as every intake does:
provider id, NHS number, then demographics), by conditional update on its identifiers, so a
re-sent file writes nothing; a Provenance names the source and the record for every record that
changed something. A Bundle is applied whole (a transaction) or entry by entry (a batch), with
ids derived from the source and the entry, so a resend after a crash makes no duplicates.
Refused records go to the quarantine with their reasons; the report is kept as the file's receipt.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime
from typing import Any

import orjson
import structlog

from gateway.codes import NHS_NUMBER_SYSTEM
from gateway.fhir.errors import FhirError
from gateway.intake.base import SourceIntake, naive_utc
from gateway.intake.receipts import add_quarantine, add_receipt, dedupe_key
from gateway.intake.writes import (
    AmbiguousMatch,
    PersonResolver,
    find_one,
    resolve_patient_refs,
    source_provenance,
    token,
    upsert_by_identifier,
)
from gateway.mappings.community import (
    Accepted,
    RecordResult,
    Rejected,
    UnreadableRecords,
    map_bundle,
    map_record,
    read_records,
)
from gateway.mappings.source import SourceSystem
from gateway.store.api import UnitOfWork, instant
from gateway.types import JSON

log = structlog.get_logger(__name__)

KIND = "community"
_IDS = uuid.UUID("6f1f4c2e-5d0a-4d38-9a55-0c7b3f1e2a10")  # namespace of ids derived from source + entry


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, FhirError) and exc.status == 409


class CommunityIntake(SourceIntake):
    kind = KIND
    sender = "provider"

    def ingest(self, data: bytes, *, filename: str = "records.json", source: SourceSystem | None = None) -> JSON:
        """The per-record report ({"file", "source_id", "format", "totals", "records": [...]}).

        Raises `UnreadableRecords` (after quarantining the file) when it is not JSON of either shape.
        """
        source = source or self.default_source()
        key = dedupe_key(KIND.encode(), data)
        earlier = self.earlier_report(source.source_id, key)
        if earlier is not None:
            return earlier
        now = self.now()
        try:
            doc = _parse(data)
            bundle = doc if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" else None
            records = None if bundle is not None else read_records(data)
        except UnreadableRecords as exc:
            self._quarantine(data, source, str(exc), now, key=key)
            raise
        if bundle is not None:
            entries = self._apply_bundle(data, bundle, source, key, now)
            fmt = "fhir-bundle"
        else:
            assert records is not None
            entries = [self._apply_record(r, n, source, key, now) for n, r in enumerate(records, start=1)]
            fmt = "records"
        accepted = sum(1 for e in entries if e["status"] == "accepted")
        report: JSON = {
            "file": filename,
            "source_id": source.source_id,
            "format": fmt,
            "totals": {"records": len(entries), "accepted": accepted, "rejected": len(entries) - accepted},
            "records": entries,
        }
        self.record_report(source.source_id, key, now, report)
        log.info("intake.community.ingested", source_id=source.source_id, **report["totals"])
        return report

    # -- JSON records ----------------------------------------------------------------------------

    def _apply_record(self, record: Any, number: int, source: SourceSystem, key: str, now: datetime) -> JSON:
        result: RecordResult = map_record(record, source=source, record_number=number)
        record_id = record.get("recordId") if isinstance(record, dict) else None
        entry: JSON = {"record": number, "record_id": record_id if isinstance(record_id, str) else None}
        if isinstance(result, Rejected):
            reasons = list(result.reasons)
            self._quarantine(orjson.dumps({"record": number, "value": record}), source, "; ".join(reasons), now)
            return {**entry, "status": "rejected", "reasons": reasons, "resource_types": []}
        assert isinstance(result, Accepted)
        try:
            with self.store.writer() as uow:
                start = self._write_record(uow, PersonResolver(self.index, now=now), result)
                changed = uow.written[start:]
                if changed:
                    uow.create(
                        source_provenance(
                            source,
                            changed,
                            recorded=instant(naive_utc(now)),
                            entity_kind="community-record",
                            entity_value=f"{key}#{number}",
                            display=f"Community record {number}",
                        )
                    )
        except (AmbiguousMatch, FhirError) as exc:
            if _retryable(exc):
                raise
            reason = f"not applied: {exc}"
            self._quarantine(orjson.dumps({"record": number, "value": record}), source, reason, now)
            return {**entry, "status": "rejected", "reasons": [reason], "resource_types": []}
        return {**entry, "status": "accepted", "reasons": [], "resource_types": list(result.resource_types)}

    def _write_record(self, uow: UnitOfWork, resolver: PersonResolver, result: Accepted) -> int:
        """Write the record's Patient, then the rest linked to it; returns where its writes begin."""
        before = len(uow.written)
        patient, *rest = result.resources
        identifiers = patient.get("identifier") or []
        stored = resolver.resolve(uow, patient, identifiers).patient
        known = {token(identifiers[0]): stored.id} if identifiers else {}
        for res in rest:
            upsert_by_identifier(uow, resolve_patient_refs(uow, res, known))
        return before

    # -- FHIR Bundles ----------------------------------------------------------------------------

    def _apply_bundle(self, raw: bytes, bundle: JSON, source: SourceSystem, key: str, now: datetime) -> list[JSON]:
        checked = map_bundle(bundle, source=source)
        entries = [_bundle_entry(e.index, e.resource_type, list(e.reasons)) for e in checked.entries]
        if checked.bundle is None:
            reasons = list(checked.reasons)
            self._quarantine(raw, source, "; ".join(reasons) or "Bundle refused", now)
            if not entries:
                return [_bundle_entry(0, "Bundle", reasons)]
            for e in entries:  # a transaction is all or nothing: every entry is refused with it
                e["status"] = "rejected"
                e["reasons"] = e["reasons"] or [f"transaction refused: {'; '.join(reasons)}"]
            return entries
        kept = [e for e in entries if e["status"] == "accepted"]
        rejected = [e for e in entries if e["status"] == "rejected"]
        if rejected:
            self._quarantine(raw, source, f"{len(rejected)} Bundle entries refused", now)
        items = list(zip(kept, checked.bundle["entry"], strict=True))
        try:
            self._write_entries(items, source, key, now)
        except (AmbiguousMatch, FhirError) as exc:
            if _retryable(exc):
                raise
            if checked.bundle.get("type") == "transaction":
                for e in kept:
                    e.update(status="rejected", reasons=[f"transaction not applied: {exc}"])
                self._quarantine(raw, source, f"transaction not applied: {exc}", now)
                return entries
            for item in items:  # a batch: each entry alone, so one bad entry spoils only itself
                try:
                    self._write_entries([item], source, key, now)
                except (AmbiguousMatch, FhirError) as one:
                    if _retryable(one):
                        raise
                    item[0].update(status="rejected", reasons=[f"not applied: {one}"])
        return entries

    def _write_entries(self, items: list[tuple[JSON, JSON]], source: SourceSystem, key: str, now: datetime) -> None:
        with self.store.writer() as uow:
            resolver = PersonResolver(self.index, now=now)
            ids: dict[str, str] = {}  # fullUrl → "Type/id"
            patients = [(r, e) for r, e in items if e["resource"]["resourceType"] == "Patient"]
            others = [(r, e) for r, e in items if e["resource"]["resourceType"] != "Patient"]
            for _, entry in patients:
                res = entry["resource"]
                keys = [i for i in res.get("identifier") or [] if i.get("system") and i.get("value")]
                keys.sort(key=lambda i: i.get("system") == NHS_NUMBER_SYSTEM)  # the provider's own id first
                linked = resolver.resolve(uow, _without_id(res), keys)
                if entry.get("fullUrl"):
                    ids[entry["fullUrl"]] = linked.patient.reference
            planned = [(entry, self._plan_id(uow, entry, r["entry"], source, key)) for r, entry in others]
            for entry, rid in planned:
                if entry.get("fullUrl"):
                    ids[entry["fullUrl"]] = f"{entry['resource']['resourceType']}/{rid}"
            known: dict[str, str] = {}
            for entry, rid in planned:
                res = resolve_patient_refs(uow, _rewrite_refs(entry["resource"], ids), known)
                res["id"] = rid
                uow.update(res)
            if uow.written:
                uow.create(
                    source_provenance(
                        source,
                        list(uow.written),
                        recorded=instant(naive_utc(now)),
                        entity_kind="community-record",
                        entity_value=key,
                        display="Community provider Bundle",
                    )
                )

    def _plan_id(self, uow: UnitOfWork, entry: JSON, index: int, source: SourceSystem, key: str) -> str:
        """The stored id an entry is written under: the resource already holding its first
        identifier, else one derived from source + identifier (or + file + entry), so a resend
        or a resumed ingest lands on the same resource."""
        res = entry["resource"]
        rtype = res["resourceType"]
        identifiers = res.get("identifier") or []
        if isinstance(identifiers, dict):
            identifiers = [identifiers]
        if identifiers and identifiers[0].get("system") and identifiers[0].get("value"):
            found = find_one(uow, rtype, identifiers[0])
            if found is not None:
                return found.id
            return str(uuid.uuid5(_IDS, f"{source.source_id}|{rtype}|{token(identifiers[0])}"))
        url = (entry.get("request") or {}).get("url") or ""
        if entry["request"]["method"] == "PUT" and url.count("/") == 1 and "?" not in url:
            # The provider's own id for it, kept in its own space: never another source's resource.
            return str(uuid.uuid5(_IDS, f"{source.source_id}|{url}"))
        return str(uuid.uuid5(_IDS, f"{source.source_id}|{key}|{entry.get('fullUrl') or index}"))

    # -- quarantine ------------------------------------------------------------------------------

    def _quarantine(
        self, raw: bytes, source: SourceSystem, reason: str, now: datetime, *, key: str | None = None
    ) -> None:
        with self.store.writer() as uow:
            entry_id = add_quarantine(
                uow.conn, source_id=source.source_id, kind=KIND, raw=raw, reason=reason, received_at=naive_utc(now)
            )
            if key is not None:  # the whole file was unreadable: its receipt answers a resend
                add_receipt(
                    uow.conn,
                    source_id=source.source_id,
                    key=key,
                    kind=KIND,
                    control_id=None,
                    received_at=naive_utc(now),
                    outcome="rejected",
                    ack=orjson.dumps({"error": reason}),
                    quarantine_id=entry_id,
                )


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableRecords(f"not valid JSON: {exc}") from exc


def _bundle_entry(index: int, rtype: str | None, reasons: list[str]) -> JSON:
    return {
        "record": index + 1,
        "entry": index,
        "status": "rejected" if reasons else "accepted",
        "reasons": reasons,
        "resource_types": [rtype] if rtype and not reasons else [],
    }


def _without_id(res: JSON) -> JSON:
    """A provider's Patient is matched into ours, never stored under the id it chose."""
    return {k: v for k, v in res.items() if k != "id"}


def _rewrite_refs(res: JSON, ids: dict[str, str]) -> JSON:
    """`urn:uuid:` (fullUrl) references → the stored `Type/id` they were given."""
    out: JSON = copy.deepcopy(res)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref in ids:
                node["reference"] = ids[ref]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out
