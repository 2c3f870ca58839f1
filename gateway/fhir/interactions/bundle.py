"""transaction and batch Bundles (https://hl7.org/fhir/R4/http.html#transaction).

A transaction runs in one database transaction: every entry commits or none does. Entries are
processed in the spec's order (DELETE, POST, PUT, GET); `urn:uuid:` (and other fullUrl)
references are rewritten to the ids the server assigned, and conditional references
(`Patient?identifier=…`) are resolved to the one resource they match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type, parse_json, read_body
from gateway.fhir.bundles import searchset
from gateway.fhir.errors import FhirError, invalid
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.interactions.conditional import matching_ids, multiple_matches, parse_if_match
from gateway.fhir.interactions.delete import delete_in
from gateway.fhir.interactions.update import conditional_update_in, update_in
from gateway.fhir.repository import Repository
from gateway.fhir.responses import Prefer, json_response
from gateway.fhir.search.guarded import search_as
from gateway.fhir.services import services_of
from gateway.fhir.validate import validation_issues
from gateway.store.api import StoredResource, UnitOfWork, instant, new_id

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: str | None
    rtype: str = ""
    rid: str | None = None
    query: str = ""
    assigned: str | None = None  # "Type/id" this entry's resource will have
    result: dict[str, Any] = field(default_factory=dict)


def _parse_entries(bundle: dict[str, Any], fhir_base: str) -> list[Entry]:
    entries = []
    for i, raw in enumerate(bundle.get("entry") or []):
        request = raw.get("request") or {}
        method = str(request.get("method", "")).upper()
        url = request.get("url")
        if method not in _ORDER or not isinstance(url, str):
            raise invalid(f"entry {i}: request.method and request.url are required", [f"Bundle.entry[{i}].request"])
        if url.startswith(fhir_base):
            url = url[len(fhir_base) :]
        url = url.lstrip("/")
        parts = urlsplit(url)
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise invalid(f"entry {i}: request.url {url!r} names no resource type")
        res = raw.get("resource")
        if method in ("POST", "PUT") and not isinstance(res, dict):
            raise invalid(f"entry {i}: {method} needs a resource", [f"Bundle.entry[{i}].resource"])
        e = Entry(i, method, url, raw.get("fullUrl"), res, request.get("ifNoneExist"), request.get("ifMatch"))
        e.rtype, e.query = segments[0], parts.query
        e.rid = segments[1] if len(segments) > 1 else None
        check_type(e.rtype)
        if res is not None and res.get("resourceType") != e.rtype:
            raise invalid(f"entry {i}: resource type does not match request.url {url!r}")
        entries.append(e)
    return entries


def _rewrite(node: Any, mapping: dict[str, str], resolve: Any) -> Any:
    """Replace fullUrl references with assigned ids, and conditional references with matches."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                if value in mapping:
                    value = mapping[value]
                elif "?" in value and not value.startswith(("http:", "https:", "urn:")):
                    value = resolve(value)
            out[key] = _rewrite(value, mapping, resolve)
        return out
    if isinstance(node, list):
        return [_rewrite(v, mapping, resolve) for v in node]
    return node


def _response(stored: StoredResource | None, status: str, fhir_base: str, *, body: bool) -> dict[str, Any]:
    resp: dict[str, Any] = {"status": status}
    out: dict[str, Any] = {"response": resp}
    if stored is not None:
        resp["etag"] = stored.etag
        resp["lastModified"] = instant(stored.last_updated)
        if not stored.deleted:
            resp["location"] = f"{stored.type}/{stored.id}/_history/{stored.version_id}"
            out["fullUrl"] = f"{fhir_base}/{stored.type}/{stored.id}"
            if body and stored.content is not None:
                out["resource"] = orjson.Fragment(stored.content)
    return out


def _read_entry(uow: UnitOfWork, repo: Repository, e: Entry, fhir_base: str) -> dict[str, Any]:
    repo.allow("read", e.rtype)
    if e.rid is None:
        from gateway.fhir.search.parse import parse_search

        parsed = parse_search(
            uow.store.registry, e.rtype, parse_qsl(e.query), strict=True, default_count=50, max_count=1000
        )
        page = search_as(uow, repo, parsed.query, e.query)
        bundle = orjson.Fragment(
            searchset(fhir_base, page.rows, page.included, total=page.total, links={}, issues=parsed.issues)
        )
        return {"response": {"status": "200 OK"}, "resource": bundle}
    stored = uow.read(e.rtype, e.rid)
    if not repo.visible(uow, [stored]):
        from gateway.fhir.errors import not_found

        raise not_found(f"{e.rtype}/{e.rid}")
    return _response(stored, "200 OK", fhir_base, body=True)


def _run(uow: UnitOfWork, repo: Repository, entries: list[Entry], fhir_base: str, body: bool) -> None:
    """Apply entries in transaction order inside `uow`; raise FhirError naming the failing entry."""
    mapping: dict[str, str] = {}
    ordered = sorted(entries, key=lambda e: (_ORDER[e.method], e.index))
    for e in ordered:  # assign ids first, so references can be rewritten before any write
        if e.method == "POST":
            if e.if_none_exist:
                ids = matching_ids(uow, repo, e.rtype, e.if_none_exist)
                if len(ids) > 1:
                    raise multiple_matches(e.rtype, e.if_none_exist)
                e.assigned = f"{e.rtype}/{ids[0]}" if ids else f"{e.rtype}/{new_id()}"
                e.result["matched"] = bool(ids)
            else:
                e.assigned = f"{e.rtype}/{new_id()}"
        elif e.method == "PUT":
            if e.rid is None:
                ids = matching_ids(uow, repo, e.rtype, e.query)
                if len(ids) > 1:
                    raise multiple_matches(e.rtype, e.query)
                e.assigned = f"{e.rtype}/{ids[0] if ids else (e.resource or {}).get('id') or new_id()}"
            else:
                e.assigned = f"{e.rtype}/{e.rid}"
        if e.assigned and e.full_url:
            mapping[e.full_url] = e.assigned

    def resolve(conditional: str) -> str:
        rtype, _, query = conditional.partition("?")
        check_type(rtype)
        ids = matching_ids(uow, repo, rtype, query)
        if len(ids) != 1:
            raise FhirError(
                "multiple-matches" if ids else "not-found",
                f"conditional reference {conditional!r} matched {len(ids)} resources",
                status=412 if ids else 404,
            )
        return f"{rtype}/{ids[0]}"

    for e in ordered:
        try:
            if e.method == "DELETE":
                repo.allow("delete", e.rtype)
                if e.rid is None:
                    ids = matching_ids(uow, repo, e.rtype, e.query)
                    if len(ids) > 1:
                        raise multiple_matches(e.rtype, e.query)
                    tombstones = [delete_in(uow, repo, e.rtype, i) for i in ids]
                else:
                    tombstones = [delete_in(uow, repo, e.rtype, e.rid)]
                e.result = {"response": {"status": "204 No Content"}}
                if tombstones and tombstones[0] is not None:
                    e.result["response"]["etag"] = tombstones[0].etag
                continue
            if e.method in ("GET", "HEAD"):
                e.result = _read_entry(uow, repo, e, fhir_base)
                continue
            assert e.resource is not None and e.assigned is not None
            res = _rewrite(e.resource, mapping, resolve)
            problems = validation_issues(res)
            if problems:
                raise FhirError("processing", problems[0]["diagnostics"], status=422, issues=problems)
            rid = e.assigned.split("/", 1)[1]
            if e.method == "POST":
                repo.allow("create", e.rtype)
                if e.result.get("matched"):
                    stored, status = uow.read(e.rtype, rid), 200
                else:
                    stored, status = uow.create(res, rid=rid), 201
                e.result = _response(stored, "201 Created" if status == 201 else "200 OK", fhir_base, body=body)
            else:
                repo.allow("update", e.rtype)
                if e.rid is not None and res.get("id") not in (None, e.rid):
                    raise invalid(f"resource id {res.get('id')!r} does not match request.url {e.url!r}")
                res["id"] = rid
                if e.rid is None:
                    stored, status = conditional_update_in(uow, repo, e.rtype, e.query, res, parse_if_match(e.if_match))
                else:
                    stored, status = update_in(uow, repo, res, parse_if_match(e.if_match))
                e.result = _response(stored, "201 Created" if status == 201 else "200 OK", fhir_base, body=body)
        except FhirError as err:
            err.diagnostics = f"entry {e.index} ({e.method} {e.url}): {err.diagnostics}"
            for item in err.issues:
                item["diagnostics"] = f"entry {e.index} ({e.method} {e.url}): {item.get('diagnostics', '')}"
                item.setdefault("expression", [f"Bundle.entry[{e.index}]"])
            raise


async def bundle(request: Request) -> Response:
    services = services_of(request)
    data = parse_json(await read_body(request, services.settings.max_body_bytes))
    if data.get("resourceType") != "Bundle":
        raise invalid("POST to the base takes a Bundle of type transaction or batch")
    btype = data.get("type")
    if btype not in ("transaction", "batch"):
        raise invalid(f"Bundle.type must be transaction or batch, not {btype!r}", ["Bundle.type"])
    entries = _parse_entries(data, services.fhir_base)
    repo = repository(request)
    body = Prefer.from_request(request).return_ != "minimal"

    def work_transaction() -> None:
        with repo.writer() as uow:
            _run(uow, repo, entries, services.fhir_base, body)

    def work_batch() -> None:
        for e in entries:
            try:
                with repo.writer() as uow:
                    _run(uow, repo, [e], services.fhir_base, body)
            except FhirError as err:
                e.result = {"response": {"status": f"{err.status}", "outcome": err.outcome()}}

    await in_thread(work_transaction if btype == "transaction" else work_batch)
    response = {
        "resourceType": "Bundle",
        "type": f"{btype}-response",
        "entry": [e.result for e in entries],
    }
    return json_response(response)
