"""`$everything`'s de-duplication (gateway.record.everything): identifiers remembered per stored version."""

from __future__ import annotations

from datetime import datetime

import orjson

from gateway.record.everything import BusinessKeys, deduplicate
from gateway.store.api import StoredResource

SYSTEM = "https://example.org/encounter-id"


def stored(rid: str, version: int, minute: int, *values: str) -> StoredResource:
    body = {"resourceType": "Encounter", "id": rid, "identifier": [{"system": SYSTEM, "value": v} for v in values]}
    return StoredResource("Encounter", rid, version, datetime(2026, 1, 1, 10, minute), False, orjson.dumps(body))


def test_the_newest_copy_of_a_fact_is_kept_with_or_without_remembered_keys() -> None:
    rows = [stored("a", 1, 0, "V1"), stored("b", 1, 5, "V1", "V2"), stored("c", 1, 1, "V3")]
    known = BusinessKeys()
    assert [s.id for s in deduplicate(rows)] == ["b", "c"]
    assert [s.id for s in deduplicate(rows, known.of)] == ["b", "c"]
    assert [s.id for s in deduplicate(rows, known.of)] == ["b", "c"]  # answered from memory


def test_a_new_version_is_read_afresh() -> None:
    known = BusinessKeys()
    assert known.of(stored("a", 1, 0, "V1")) == (f"{SYSTEM}|V1",)
    assert known.of(stored("a", 2, 0, "V9")) == (f"{SYSTEM}|V9",)  # the identifier changed in version 2
    assert known.of(stored("a", 1, 0, "ignored")) == (f"{SYSTEM}|V1",)  # a version never changes
