"""Store hooks complete a resource before the no-change comparison: a re-send writes nothing."""

from __future__ import annotations

from typing import Any

from gateway.fhir.services import Services


def test_a_resend_completed_by_a_hook_makes_no_new_version(services: Services) -> None:
    def tag(res: dict[str, Any]) -> dict[str, Any]:
        meta = dict(res.get("meta") or {})
        meta["tag"] = [*meta.get("tag", []), {"system": "urn:test", "code": "stamped"}]
        return {**res, "meta": meta}

    services.store.before_write("*", tag)
    first = services.store.update({"resourceType": "Patient", "id": "p1", "gender": "female"})
    again = services.store.update({"resourceType": "Patient", "id": "p1", "gender": "female"})
    assert first.version_id == again.version_id == 1
    assert again.json()["meta"]["tag"] == [{"system": "urn:test", "code": "stamped"}]
