"""Write many source records in one transaction: identifiers looked up once per chunk, people
resolved against the chunk's own state, the net changes written in bulk.

A bulk intake (a social-care extract) used to spend a dozen database round trips per row finding
its resources by identifier. `ChunkWrite` preloads every identifier the chunk's records carry
(one query per resource type), lets each record run the shared write helpers (`find_one`,
`PersonResolver`, and no-copy forms of the conditional update) against a `StagingUnitOfWork`, and
writes one version per changed resource at the end. The matching rules are the resolver's own: a
valid NHS number or the source's id first, demographics otherwise, the review band for probable
matches; people earlier in the chunk are candidates for later rows exactly as if each row had been
committed on its own.

A record that fails (an identifier two live resources hold) is taken back alone: what it staged is
undone and the resolver forgets the people it touched, so the chunk's other records still go in.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.patient_index import PatientIndex
from gateway.identity.person import PersonRecord
from gateway.intake.new_person import claim_new_people
from gateway.intake.writes import PersonResolver, find_one, live_patient, person_record, token
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.staging import InFlight, Key, StagingUnitOfWork, Token
from gateway.types import JSON


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an extract is mapped and written.

    A chunk allocates tens of thousands of dicts and lists (the mapped resources, the staged
    versions, the index rows) that all live until it commits, so the collector promotes them and
    walks them again and again, a fifth of the ingest's CPU, finding nothing: they are trees, freed
    by reference counting when the chunk ends. Paused per chunk only, it still ran between chunks,
    on the next chunk mapped meanwhile and, in its full collections, on everything the process
    keeps (the patient index, the report so far): a tenth of the CPU of a 100,000-row extract, more
    the longer it ran. So it stays paused for the whole extract. What that leaves uncollected is
    small (about 70 objects in cycles per 1,000 rows, measured) and collected once it resumes. If
    another thread paused it too, it may come back on early, which only costs time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _ChunkResolver(PersonResolver):
    def __init__(self, index: PatientIndex, *, now: datetime, carried: Mapping[str, PersonRecord | None]) -> None:
        super().__init__(index, now=now)
        # The Patients of the chunk still being committed (id → match record, None: not matchable):
        # the shared index has them only once that chunk has committed.
        self._carried = carried
        self.restart(())

    def restart(self, patients: Iterable[StoredResource]) -> None:
        """Forget what this chunk matched, then file again the Patients still staged (after those
        of the chunk in flight)."""
        self._local = InMemoryCandidateIndex()
        self._touched = set(self._carried)
        for rid, record in self._carried.items():
            if record is not None:
                self._local.add(rid, record)
        for stored in patients:
            self._remember(stored)

    def record_of(self, stored: StoredResource) -> PersonRecord | None:
        """The match record of a Patient this resolver filed last as `stored` (None: not matchable)."""
        if stored.id in self._touched:
            return self._local.get(stored.id)
        patient = stored.json()
        record = person_record(patient)
        return record if record is not None and live_patient(patient) else None


@dataclass(frozen=True)
class Flying:
    """What a chunk still being copied in and committed wrote, for the next chunk to stage on: its
    versions with their identifier tokens, and its Patients' match records (id → record)."""

    written: Mapping[Key, InFlight]
    people: Mapping[str, PersonRecord | None]


def _token(rtype: str, ident: JSON) -> Token:
    return (rtype, ident.get("system"), str(ident.get("value")))


# Elements whose data types hold no Reference: not walked (most of a mapped resource is codings).
_NO_REFERENCES = frozenset({"meta", "identifier", "coding", "valueCoding", "period", "valuePeriod"})


def patient_refs(node: Any, found: list[JSON]) -> list[JSON]:
    """The logical Patient references ({"type": "Patient", "identifier": …}, no `reference`) in `node`."""
    if isinstance(node, dict):
        if node.get("type") == "Patient" and isinstance(node.get("identifier"), dict) and "reference" not in node:
            found.append(node)
        for name, value in node.items():
            if isinstance(value, dict | list) and name not in _NO_REFERENCES:
                patient_refs(value, found)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                patient_refs(item, found)
    return found


def link_patient_refs(uow: UnitOfWork, refs: list[JSON], known: dict[str, str]) -> None:
    """`resolve_patient_refs` in place on references found by `patient_refs` in a resource the
    caller owns (freshly mapped), so nothing is copied. `known` caches token → Patient id."""
    for node in refs:
        ident = node["identifier"]
        key = token(ident)
        if key not in known:
            found = find_one(uow, "Patient", ident)
            if found is not None:
                known[key] = found.id
        if key in known:
            node["reference"] = f"Patient/{known[key]}"


def upsert_owned(uow: UnitOfWork, res: JSON) -> StoredResource:
    """`upsert_by_identifier` for a resource the caller owns and will not touch again: no copy."""
    identifiers = res.get("identifier") or []
    if isinstance(identifiers, dict):  # QuestionnaireResponse.identifier is a single Identifier
        identifiers = [identifiers]
    current = find_one(uow, res["resourceType"], identifiers[0]) if identifiers else None
    if current is None:
        return uow.create(res)
    res["id"] = current.id
    return uow.update(res)[0]


class ChunkWrite:
    """One chunk's transaction (make one per `store.writer()`): preload, then `record` each source
    record (which calls `person` and `upsert`), then `apply`."""

    def __init__(self, uow: UnitOfWork, index: PatientIndex, *, now: datetime, in_flight: Flying | None = None) -> None:
        self.uow = uow
        self.staging = StagingUnitOfWork(uow, in_flight.written if in_flight else None)
        self.resolver = _ChunkResolver(index, now=now, carried=in_flight.people if in_flight else {})
        self._refs: dict[int, list[JSON]] = {}  # id(resource) → its logical Patient references
        self._people: dict[bytes, tuple[str, int]] = {}  # person record → (Patient id, staging counter)

    def preload(self, resources: Iterable[JSON]) -> None:
        """Look up at once everything the write helpers will look for: each resource's first
        identifier (a Patient's every identifier, any of which may find it) and its Patient references."""
        tokens: set[Token] = set()
        for res in resources:
            rtype = res["resourceType"]
            identifiers = res.get("identifier") or []
            if isinstance(identifiers, dict):
                identifiers = [identifiers]
            for ident in identifiers if rtype == "Patient" else identifiers[:1]:
                tokens.add(_token(rtype, ident))
            refs = self._refs[id(res)] = patient_refs(res, [])
            tokens.update(_token("Patient", node["identifier"]) for node in refs)
        self.staging.preload(tokens)
        claim_new_people(self.staging, tokens)

    def record(self, write: Callable[[], None]) -> list[Key]:
        """Run one record's write; returns what it changed. On any error it is undone and re-raised."""
        mark = self.staging.mark()
        try:
            write()
        except BaseException:
            self.staging.undo(mark)
            self.resolver.restart(self.staging.staged("Patient"))
            raise
        return self.staging.changed_since(mark)

    def person(self, patient: JSON, keys: list[JSON]) -> str:
        """The Patient id of a person record, by `PersonResolver.resolve`.

        A person's rows repeat the same person record. When this very record was resolved and no
        Patient has been staged since, resolving it again would find the same Patient and change
        nothing, so that is skipped. (Not after a certain demographic link: the second pass would
        find the Patient by its new identifier and lay the record over it.)
        """
        memo = orjson.dumps([patient, keys])
        seen = self._people.get(memo)
        if seen is not None and seen[1] == self.staging.changes("Patient"):
            return seen[0]
        link = self.resolver.resolve(self.staging, patient, keys)
        if link.how != "certain":
            self._people[memo] = (link.patient.id, self.staging.changes("Patient"))
        return link.patient.id

    def upsert(self, res: JSON, known: dict[str, str]) -> StoredResource:
        """Link the resource's Patient references (`known`: token → id, extended as found), then
        conditional update on its first identifier. The resource is the caller's: it is not copied."""
        refs = self._refs.get(id(res))
        link_patient_refs(self.staging, patient_refs(res, []) if refs is None else refs, known)
        return upsert_owned(self.staging, res)

    def apply(self) -> dict[Key, StoredResource]:
        """Write the chunk's net changes (one version per changed resource) into the transaction."""
        return self.staging.apply()

    def finish(self) -> Flying:
        """`apply` in two halves: the new versions, queued in the unit of work and returned (what
        the next chunk may stage on); then `write_out`, before the flush."""
        written = self.staging.finish()
        people = {k[1]: self.resolver.record_of(f.stored) for k, f in written.items() if k[0] == "Patient"}
        return Flying(written, people)

    def write_out(self) -> None:
        self.staging.write_out()
