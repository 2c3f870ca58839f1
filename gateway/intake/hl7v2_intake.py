"""HL7 v2 ADT intake: one raw message in, its ACK out, after everything it did is committed.

Each message is handled in one store transaction: the receipt (dedupe key + the ACK sent) goes in
with the resources it wrote, or with the quarantine row holding its raw bytes and reason. So an
ACK always means "durably handled", a resend is answered from the receipt and changes nothing,
and a failure to commit raises, so the MLLP listener sends no ACK and the sender tries again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.codes import NHS_NUMBER_SYSTEM
from gateway.fhir.errors import FhirError
from gateway.identity.patient_index import PatientIndex
from gateway.intake.base import SourceIntake, utc_now
from gateway.intake.locks import KeyedLocks
from gateway.intake.receipts import (
    add_quarantine,
    add_receipt,
    dedupe_key,
    find_receipt,
    get_quarantined,
    mark_replayed,
)
from gateway.intake.sources import SourceRegistry
from gateway.intake.writes import AmbiguousMatch, PersonResolver, find_one, merge_links, token, upsert_by_identifier
from gateway.mappings.hl7v2 import (
    AdtHeader,
    AdtMapping,
    AdtMappingError,
    Hl7ParseError,
    ack_wanted,
    build_ack,
    build_unparseable_ack,
    map_parsed,
    parse_message,
)
from gateway.store.api import Store, StoredResource, UnitOfWork
from gateway.types import JSON

log = structlog.get_logger(__name__)

KIND = "hl7v2"
UNIDENTIFIED_SOURCE = "unidentified"  # receipts/quarantine of bytes whose MSH could not be read


def naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class _Rejection:
    """A message that will be quarantined: where it came from and what to answer."""

    source_id: str
    key: str
    control_id: str | None
    error: AdtMappingError
    ack: bytes


class Hl7Intake(SourceIntake):
    kind = "hospital"

    def __init__(
        self,
        store: Store,
        sources: SourceRegistry,
        *,
        now: Callable[[], datetime] = utc_now,
        index: PatientIndex | None = None,
    ) -> None:
        super().__init__(store, sources, now=now, index=index)
        self._locks = KeyedLocks()

    # -- the one entry point -----------------------------------------------------------------

    def handle(self, raw: bytes) -> bytes:
        """Apply or quarantine one message and return its ACK (b"" when the sender wants none)."""
        now = self.now()
        try:
            parsed = parse_message(raw)
        except Hl7ParseError as exc:
            ack = build_unparseable_ack(raw, exc, now=now)
            return self._quarantine(raw, _Rejection(UNIDENTIFIED_SOURCE, dedupe_key(raw), None, exc, ack), now)
        header = parsed.header
        source = self.sources.for_sender(header.sending_application, header.sending_facility)
        key = dedupe_key(header.sending_application.encode(), header.control_id.encode(), raw)
        try:
            mapping = map_parsed(parsed, source=source)
        except AdtMappingError as exc:
            return self._quarantine(raw, self._rejection(header, source.source_id, key, exc, now), now)
        try:
            return self._apply(raw, mapping, source.source_id, key, now)
        except (AdtMappingError, AmbiguousMatch, FhirError) as exc:
            if isinstance(exc, FhirError) and exc.status == 409:
                raise  # a concurrent write: no ACK, the sender resends and we try again
            error = exc if isinstance(exc, AdtMappingError) else AdtMappingError(f"not applied: {exc}", "AE")
            return self._quarantine(raw, self._rejection(header, source.source_id, key, error, now), now)

    def replay(self, entry_id: int) -> bytes:
        """Re-run a quarantined message (after a fix) and mark it replayed if it now applies.

        Raises `AdtMappingError` if it still cannot be applied; the entry stays open.
        """
        with self.store.reader() as uow:
            entry = get_quarantined(uow.conn, entry_id)
        if entry is None or entry.kind != KIND:
            raise KeyError(entry_id)
        if entry.status != "open":
            raise ValueError(f"quarantine entry {entry_id} is already {entry.status}")
        now = self.now()
        parsed = parse_message(entry.raw)
        header = parsed.header
        source = self.sources.for_sender(header.sending_application, header.sending_facility)
        mapping = map_parsed(parsed, source=source)
        return self._apply(entry.raw, mapping, source.source_id, None, now, replay_of=entry_id)

    # -- paths ---------------------------------------------------------------------------------

    def _rejection(
        self, header: AdtHeader, source_id: str, key: str, error: AdtMappingError, now: datetime
    ) -> _Rejection:
        ack = build_ack(header, error.ack_code, now=now, error=error)
        if not ack_wanted(header, error.ack_code):
            ack = b""
        return _Rejection(source_id, key, header.control_id, error, ack)

    def _quarantine(self, raw: bytes, rejection: _Rejection, now: datetime) -> bytes:
        at = naive_utc(now)
        with self.store.writer() as uow:
            seen = find_receipt(uow.conn, rejection.source_id, rejection.key)
            if seen is not None:
                return seen.ack
            entry_id = add_quarantine(
                uow.conn,
                source_id=rejection.source_id,
                kind=KIND,
                raw=raw,
                reason=rejection.error.reason,
                received_at=at,
            )
            add_receipt(
                uow.conn,
                source_id=rejection.source_id,
                key=rejection.key,
                kind=KIND,
                control_id=rejection.control_id,
                received_at=at,
                outcome="rejected" if rejection.error.ack_code == "AR" else "quarantined",
                ack=rejection.ack,
                quarantine_id=entry_id,
            )
        log.warning("intake.hl7v2.quarantined", quarantine_id=entry_id, source_id=rejection.source_id)
        return rejection.ack

    def _apply(
        self,
        raw: bytes,
        mapping: AdtMapping,
        source_id: str,
        key: str | None,
        now: datetime,
        *,
        replay_of: int | None = None,
    ) -> bytes:
        keys = [token(mapping.patient_identifier)]
        keys += [token(i) for i in mapping.merge_from if i["system"] != NHS_NUMBER_SYSTEM]
        header = mapping.header
        ack = build_ack(header, "AA", now=now)
        if not ack_wanted(header, "AA"):
            ack = b""
        with self._locks.hold(keys), self.store.writer() as uow:
            if key is not None:
                seen = find_receipt(uow.conn, source_id, key)
                if seen is not None:
                    return seen.ack
            targets = _apply_mapping(uow, mapping, PersonResolver(self.index, now=now))
            provenance = copy.deepcopy(mapping.provenance)
            provenance["target"] = [{"reference": f"{s.reference}/_history/{s.version_id}"} for s in targets]
            uow.create(provenance)
            at = naive_utc(now)
            if replay_of is not None:
                mark_replayed(uow.conn, replay_of, at=at, ack=ack)
            else:
                assert key is not None
                add_receipt(
                    uow.conn,
                    source_id=source_id,
                    key=key,
                    kind=KIND,
                    control_id=header.control_id,
                    received_at=at,
                    outcome="accepted",
                    ack=ack,
                )
        log.info("intake.hl7v2.accepted", source_id=source_id, trigger=mapping.event, targets=len(targets))
        return ack


# -- applying a mapping (inside the transaction) -----------------------------------------------


def _resolve_patient(uow: UnitOfWork, mapping: AdtMapping, resolver: PersonResolver) -> list[StoredResource]:
    """The Patient (first), and a review Task when it was linked provisionally by demographics.

    A merge (A40) names its records explicitly, so it is not second-guessed by the matcher.
    """
    keys = [mapping.patient_identifier]
    if mapping.nhs_number:
        keys.append({"system": NHS_NUMBER_SYSTEM, "value": mapping.nhs_number})
    linked = resolver.resolve(uow, mapping.patient, keys, match=mapping.action != "merge")
    if linked.how in ("certain", "probable"):
        log.info("intake.hl7v2.demographic_link", how=linked.how, patient=linked.patient.id)
    return list(linked.written)


def _upsert_encounter(uow: UnitOfWork, encounter: JSON, patient_id: str) -> StoredResource:
    new: dict[str, Any] = copy.deepcopy(encounter)
    subject = dict(new.get("subject") or {})
    subject["reference"] = f"Patient/{patient_id}"
    new["subject"] = subject
    return upsert_by_identifier(uow, new)


def _merge(uow: UnitOfWork, mapping: AdtMapping, survivor: StoredResource) -> list[StoredResource]:
    """A40: link the merged-away record(s) to the survivor both ways; nothing is deleted."""
    written: list[StoredResource] = []
    survivor_json = survivor.json()
    links: list[JSON] = list(survivor_json.get("link") or [])
    for identifier in mapping.merge_from:
        if identifier["system"] == NHS_NUMBER_SYSTEM:
            continue
        old = find_one(uow, "Patient", identifier, exclude=survivor.id)
        if old is None:
            continue
        old_json = old.json()
        old_json["active"] = False
        old_json["link"] = merge_links(
            old_json.get("link") or [], [{"other": {"reference": f"Patient/{survivor.id}"}, "type": "replaced-by"}]
        )
        written.append(uow.update(old_json)[0])
        links = merge_links(links, [{"other": {"reference": f"Patient/{old.id}"}, "type": "replaces"}])
    if links != (survivor_json.get("link") or []):
        survivor_json["link"] = links
        written.insert(0, uow.update(survivor_json)[0])
    else:
        written.insert(0, survivor)
    return written


def _apply_mapping(uow: UnitOfWork, mapping: AdtMapping, resolver: PersonResolver) -> list[StoredResource]:
    """Write what the mapping means; returns the versions the Provenance names (Patient first)."""
    patient, *task = _resolve_patient(uow, mapping, resolver)
    targets = [patient]
    if mapping.action == "merge":
        targets = _merge(uow, mapping, patient)
    if mapping.encounter is not None:
        targets.append(_upsert_encounter(uow, mapping.encounter, targets[0].id))
    return targets + task
