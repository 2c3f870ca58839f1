"""Search and history Bundles, built around stored resource bytes (no re-serialisation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.fhir.errors import outcome
from gateway.store.api import StoredResource, instant, utcnow

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
_ALWAYS = ("resourceType", "id", "meta")


def elements_filter(elements: tuple[str, ...]) -> Callable[[bytes], Any]:
    """`_elements`: keep the named top-level elements (plus id/meta) and mark the copy SUBSETTED."""

    def apply(content: bytes) -> Any:
        res = orjson.loads(content)
        kept = {k: v for k, v in res.items() if k in _ALWAYS or k in elements}
        meta = dict(kept.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        kept["meta"] = meta
        return kept

    return apply


def summary_data(content: bytes) -> Any:
    """`_summary=data`: everything but the narrative."""
    res = orjson.loads(content)
    res.pop("text", None)
    meta = dict(res.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    res["meta"] = meta
    return res


_SEARCH_MODE = {mode: orjson.dumps({"mode": mode}) for mode in ("match", "include", "outcome")}


def _entry(fhir_base: str, stored: StoredResource, mode: str, shape: Callable[[bytes], Any] | None) -> bytes:
    """One entry as JSON bytes, the stored resource spliced in as stored: no dict per entry."""
    assert stored.content is not None
    body = orjson.dumps(shape(stored.content)) if shape else stored.content
    url = orjson.dumps(f"{fhir_base}/{stored.type}/{stored.id}")
    return b'{"fullUrl":' + url + b',"resource":' + body + b',"search":' + _SEARCH_MODE[mode] + b"}"


def searchset(
    fhir_base: str,
    matches: list[StoredResource],
    included: list[StoredResource],
    *,
    total: int | None,
    links: dict[str, str],
    issues: tuple[dict[str, Any], ...] = (),
    shape: Callable[[bytes], Any] | None = None,
) -> bytes:
    entries = [_entry(fhir_base, m, "match", shape) for m in matches]
    entries += [_entry(fhir_base, i, "include", shape) for i in included]
    if issues:
        entries.append(orjson.dumps({"resource": outcome(list(issues)), "search": {"mode": "outcome"}}))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "meta": {"lastUpdated": instant(utcnow())},
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": rel, "url": url} for rel, url in links.items()]
    head = orjson.dumps(bundle)
    if not entries:
        return head
    return head[:-1] + b',"entry":[' + b",".join(entries) + b"]}"


def history(fhir_base: str, versions: list[StoredResource], *, total: int | None, links: dict[str, str]) -> bytes:
    """A history Bundle; `total` left out when None (optional in R4)."""
    entries: list[dict[str, Any]] = []
    for v in versions:
        url = f"{v.type}/{v.id}"
        method = v.method if v.method in ("POST", "PUT", "DELETE") else "PUT"
        entry: dict[str, Any] = {
            "fullUrl": f"{fhir_base}/{url}",
            "request": {"method": method, "url": url if method != "POST" else v.type},
            "response": {
                "status": {"POST": "201 Created", "PUT": "200 OK", "DELETE": "204 No Content"}[method],
                "etag": v.etag,
                "lastModified": instant(v.last_updated),
            },
        }
        if not v.deleted and v.content is not None:
            entry["resource"] = orjson.Fragment(v.content)
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if total is not None:
        bundle["total"] = total
    bundle["link"] = [{"relation": rel, "url": url} for rel, url in links.items()]
    if entries:
        bundle["entry"] = entries
    return orjson.dumps(bundle)
