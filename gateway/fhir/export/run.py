"""The work of one export: every resource of the asked types, as the caller may see it, into NDJSON.

Each resource passes the same decision as a search by the caller: system- and patient-level
exports page through `search_as` (consent, patient context and audit included), a group export
hands each batch to `Repository.visible`. A hidden resource is never written, and the counts
are of lines written. Resources changed after the export's `transactionTime` are left out (the
next `_since` export picks them up), so the output is one consistent cut.

- system level: every resource of each type;
- patient level: resources in some Patient's compartment (compartment member types only);
- group level: the compartments of the Group's active members and their linked Patient records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.consent.compartment import Compartment, default_compartment
from gateway.fhir.errors import FhirError, invalid, not_found
from gateway.fhir.export.files import ERRORS, ExportFiles
from gateway.fhir.export.params import GROUP, PATIENT, ExportParams
from gateway.fhir.repository import Repository
from gateway.fhir.resource_types import SUPPORTED_TYPES
from gateway.fhir.search.guarded import search_as
from gateway.record.everything import NOT_CARE_RECORD, compartment_refs, linked_patient_ids
from gateway.store.api import StoredResource, UnitOfWork, instant
from gateway.store.search.query import Criterion, Cursor, SearchQuery

BATCH = 500
Heartbeat = Callable[[int], bool]  # (types done) -> False when the job was cancelled


class Cancelled(Exception):
    """The job was deleted while it ran."""


@dataclass(frozen=True)
class Output:
    type: str
    name: str
    count: int


@dataclass(frozen=True)
class ExportSpec:
    """One export job's parameters, as stored."""

    level: str
    group_id: str | None
    params: ExportParams
    transaction_time: datetime
    request_url: str


def _readable(repo: Repository, rtype: str) -> bool:
    try:
        repo.allow("read", rtype)
    except FhirError:
        return False
    return True


def export_types(
    repo: Repository, level: str, params: ExportParams, compartment: Compartment | None = None
) -> list[str]:
    """The types this caller's export will contain. Raises FhirError 403 when `_type` names only
    types its scopes cannot read. Types it cannot read are left out; so are non-compartment types
    at patient and group level, and (unless asked for) the gateway's own AuditEvents."""
    compartment = compartment or default_compartment()
    asked = list(params.types) if params.types is not None else sorted(SUPPORTED_TYPES - NOT_CARE_RECORD)
    if level in (PATIENT, GROUP):
        asked = [t for t in asked if compartment.is_member_type(t)]
        if not asked:
            raise invalid("_type names no resource type of the patient compartment", ["_type"])
    readable = [t for t in asked if _readable(repo, t)]
    if not readable:
        raise FhirError("forbidden", "the granted scopes allow reading none of the requested types", status=403)
    return readable


def group_patients(uow: UnitOfWork, repo: Repository, group_id: str) -> list[str]:
    """The Group's active Patient members and their linked records. Raises FhirError 404 when the
    Group is missing, deleted or hidden from the caller (all three answer alike)."""
    stored = uow.get("Group", group_id)
    if stored is None or stored.content is None or not repo.visible(uow, [stored], interaction="read"):
        raise not_found(f"Group/{group_id}")
    members: list[str] = []
    for member in stored.json().get("member") or []:
        ref = ((member.get("entity") or {}).get("reference")) or ""
        if member.get("inactive") is True or not ref.startswith("Patient/"):
            continue
        members.append(ref.split("/", 1)[1])
    found: dict[str, None] = {}
    for pid in members:
        found.update(dict.fromkeys(linked_patient_ids(uow, pid)))
    return list(found)


def _window(uow: UnitOfWork, rtype: str, spec: ExportSpec) -> tuple[Criterion, ...]:
    param = uow.store.registry.get(rtype, "_lastUpdated")
    assert param is not None
    values = [f"le{instant(spec.transaction_time)}"]
    if spec.params.since is not None:
        values.append(f"gt{instant(spec.params.since)}")
    return tuple(Criterion(param, (v,)) for v in values)


def _searched(
    repo: Repository, rtype: str, spec: ExportSpec, compartment: Compartment
) -> Iterator[list[StoredResource]]:
    cursor: Cursor | None = None
    query_text = f"{spec.request_url} [{rtype}]"
    while True:
        with repo.reader() as uow:
            q = SearchQuery(rtype, _window(uow, rtype, spec), count=BATCH, cursor=cursor, total="none")
            page = search_as(uow, repo, q, query_text)
        rows = page.rows
        if spec.level == PATIENT and rtype != "Patient":
            rows = [r for r in rows if r.content is not None and compartment.patients_of(r.json())]
        yield rows
        if not page.has_next or page.last_key is None:
            return
        cursor = Cursor(False, page.last_key)


def _in_group(
    repo: Repository, rtype: str, spec: ExportSpec, refs: list[tuple[str, str]]
) -> Iterator[list[StoredResource]]:
    since, until = spec.params.since, spec.transaction_time
    query_text = f"{spec.request_url} [{rtype}]"
    for start in range(0, len(refs), BATCH):
        with repo.reader() as uow:
            rows = [
                r
                for r in uow.fetch_many(refs[start : start + BATCH])
                if r.last_updated <= until and (since is None or r.last_updated > since)
            ]
            shown = repo.visible(uow, rows, interaction="search", query=query_text)
        yield shown


def run_export(
    repo: Repository,
    job_id: str,
    spec: ExportSpec,
    files: ExportFiles,
    *,
    heartbeat: Heartbeat,
    compartment: Compartment | None = None,
) -> tuple[list[Output], list[Output]]:
    """Write the job's files; returns (output, error) file lists. Raises Cancelled when the
    heartbeat says the job is gone, FhirError when the Group is not visible."""
    compartment = compartment or default_compartment()
    types = list(spec.params.types or ())
    files.fresh(job_id)
    group_refs: dict[str, list[tuple[str, str]]] = {}
    if spec.level == GROUP:
        assert spec.group_id is not None
        with repo.reader() as uow:
            patients = group_patients(uow, repo, spec.group_id)
            refs = compartment_refs(uow, patients, compartment) | {("Patient", p) for p in patients}
        for ref in sorted(refs):
            group_refs.setdefault(ref[0], []).append(ref)
    outputs: list[Output] = []
    errors: list[dict[str, Any]] = []
    for done, rtype in enumerate(types):
        if not heartbeat(done):
            raise Cancelled(job_id)
        batches = _in_group(repo, rtype, spec, group_refs.get(rtype, [])) if spec.level == GROUP else None
        count = 0
        with files.open_for_type(job_id, rtype) as out:
            try:
                for rows in batches or _searched(repo, rtype, spec, compartment):
                    for row in rows:
                        if row.content is not None:
                            out.write(row.content + b"\n")
                            count += 1
                    if not heartbeat(done):
                        raise Cancelled(job_id)
            except FhirError as exc:
                errors.append(exc.outcome())
        name = f"{rtype}.ndjson"
        if count:
            outputs.append(Output(rtype, name, count))
        else:
            (files.folder(job_id) / name).unlink(missing_ok=True)
    error_files: list[Output] = []
    if errors:
        with (files.folder(job_id) / ERRORS).open("wb") as out:
            out.writelines(orjson.dumps(e) + b"\n" for e in errors)
        error_files.append(Output("OperationOutcome", ERRORS, len(errors)))
    heartbeat(len(types))
    return outputs, error_files
