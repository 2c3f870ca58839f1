"""Write many source records in one transaction: identifiers looked up once per chunk, people
resolved against the chunk's own state, the net changes written in bulk.

A bulk intake (a social-care extract) used to spend a dozen database round trips per row finding
its resources by identifier. `ChunkWrite` preloads every identifier the chunk's records carry in
one query, lets each record run the shared write helpers (`find_one`, `upsert_by_identifier`,
`PersonResolver`) against a `StagingUnitOfWork`, and writes one version per changed resource at
the end. The matching rules are the resolver's own: a valid NHS number or the source's id first,
demographics otherwise, the review band for probable matches; people earlier in the chunk are
candidates for later rows exactly as if each row had been committed on its own.

A record that fails (an identifier two live resources hold) is taken back alone: what it staged is
undone and the resolver forgets the people it touched, so the chunk's other records still go in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.patient_index import PatientIndex
from gateway.intake.writes import PersonResolver, find_one, token
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.staging import Key, StagingUnitOfWork, Token
from gateway.types import JSON

RecordWrite = Callable[[StagingUnitOfWork, PersonResolver], None]


class _ChunkResolver(PersonResolver):
    def restart(self, patients: Iterable[StoredResource]) -> None:
        """Forget what this chunk matched, then file again the Patients still staged."""
        self._local = InMemoryCandidateIndex()
        self._touched = set()
        for stored in patients:
            self._remember(stored)


def identifier_tokens(resources: Iterable[JSON]) -> set[Token]:
    """What the write helpers will look up for these resources: each resource's first identifier
    (a Patient's every identifier, any of which may find it) and every logical Patient reference."""
    tokens: set[Token] = set()
    for res in resources:
        rtype = res["resourceType"]
        identifiers = res.get("identifier") or []
        if isinstance(identifiers, dict):
            identifiers = [identifiers]
        for ident in identifiers if rtype == "Patient" else identifiers[:1]:
            tokens.add(_token(rtype, ident))
        _patient_refs(res, tokens)
    return tokens


def _token(rtype: str, ident: JSON) -> Token:
    return (rtype, ident.get("system"), str(ident.get("value")))


def _patient_refs(node: Any, tokens: set[Token]) -> None:
    if isinstance(node, dict):
        ident = node.get("identifier")
        if node.get("type") == "Patient" and isinstance(ident, dict) and "reference" not in node:
            tokens.add(_token("Patient", ident))
        for value in node.values():
            if isinstance(value, dict | list):
                _patient_refs(value, tokens)
    elif isinstance(node, list):
        for item in node:
            _patient_refs(item, tokens)


def link_patient_refs(uow: UnitOfWork, res: JSON, known: dict[str, str]) -> None:
    """`resolve_patient_refs` in place, for resources the caller owns (freshly mapped): no copy."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ident = node.get("identifier")
            if node.get("type") == "Patient" and isinstance(ident, dict) and "reference" not in node:
                key = token(ident)
                if key not in known:
                    found = find_one(uow, "Patient", ident)
                    if found is not None:
                        known[key] = found.id
                if key in known:
                    node["reference"] = f"Patient/{known[key]}"
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, dict | list):
                    walk(item)

    walk(res)


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
    """One chunk's transaction (make one per `store.writer()`)."""

    def __init__(self, uow: UnitOfWork, index: PatientIndex, *, now: datetime) -> None:
        self.uow = uow
        self.staging = StagingUnitOfWork(uow)
        self.resolver = _ChunkResolver(index, now=now)

    def preload(self, resources: Iterable[JSON]) -> None:
        self.staging.preload(identifier_tokens(resources))

    def record(self, write: RecordWrite) -> list[Key]:
        """Run one record's write; returns what it changed. On any error it is undone and re-raised."""
        mark = self.staging.mark()
        try:
            write(self.staging, self.resolver)
        except BaseException:
            self.staging.undo(mark)
            self.resolver.restart(self.staging.staged("Patient"))
            raise
        return self.staging.changed_since(mark)

    def apply(self) -> dict[Key, StoredResource]:
        """Write the chunk's net changes (one version per changed resource) into the transaction."""
        return self.staging.apply()
