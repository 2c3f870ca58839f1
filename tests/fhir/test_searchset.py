"""Search Bundles are built around the stored bytes (gateway/fhir/bundles.py `searchset`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from gateway.fhir.bundles import SUBSETTED, searchset, summary_data
from gateway.store.api import StoredResource

BASE = "http://testserver/fhir"


def stored(rtype: str, rid: str, body: dict[str, Any]) -> StoredResource:
    content = orjson.dumps({"resourceType": rtype, "id": rid, **body})
    return StoredResource(rtype, rid, 1, datetime(2026, 1, 1), False, content)


def test_entries_carry_the_stored_resources_as_stored_with_their_modes() -> None:
    obs = stored("Observation", "o1", {"status": "final", "text": {"div": '<div>é "q"</div>'}})
    pat = stored("Patient", "p1", {"name": [{"family": "Ünal"}]})
    raw = searchset(BASE, [obs], [pat], total=1, links={"self": f"{BASE}/Observation?x=1"})
    assert obs.content is not None and obs.content in raw  # spliced in byte for byte
    bundle = orjson.loads(raw)
    assert list(bundle) == ["resourceType", "type", "meta", "total", "link", "entry"]
    assert bundle["total"] == 1 and bundle["link"] == [{"relation": "self", "url": f"{BASE}/Observation?x=1"}]
    assert bundle["entry"] == [
        {"fullUrl": f"{BASE}/Observation/o1", "resource": orjson.loads(obs.content), "search": {"mode": "match"}},
        {"fullUrl": f"{BASE}/Patient/p1", "resource": orjson.loads(pat.content or b""), "search": {"mode": "include"}},
    ]
    assert [list(e) for e in bundle["entry"]] == [["fullUrl", "resource", "search"]] * 2


def test_no_entries_no_total_an_outcome_and_a_shape() -> None:
    empty = orjson.loads(searchset(BASE, [], [], total=None, links={}))
    assert empty["type"] == "searchset" and "entry" not in empty and "total" not in empty
    issue = {"severity": "warning", "code": "not-supported", "diagnostics": "unknown parameter"}
    shaped = orjson.loads(
        searchset(
            BASE,
            [stored("Patient", "p1", {"text": {"div": "x"}, "gender": "other"})],
            [],
            total=1,
            links={},
            issues=(issue,),
            shape=summary_data,
        )
    )
    first, last = shaped["entry"]
    assert "text" not in first["resource"] and SUBSETTED in first["resource"]["meta"]["tag"]
    assert last["search"] == {"mode": "outcome"} and last["resource"]["resourceType"] == "OperationOutcome"
