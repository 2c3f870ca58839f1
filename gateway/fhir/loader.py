"""Loading FHIR JSON (resources, transaction/batch/collection Bundles) from files into the store.

Used by `care-gateway load` and by the demo data set; runs the same transaction code as
`POST /fhir`, with the gateway's own (system) access.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from gateway.auth.context import system_context
from gateway.fhir.errors import invalid
from gateway.fhir.interactions.bundle import Entry, _parse_entries, _run
from gateway.fhir.repository import Repository
from gateway.fhir.validate import validate_resource
from gateway.store.api import Store


def load_json(store: Store, data: dict[str, Any]) -> int:
    """Load one resource or Bundle; returns how many entries were written."""
    repo = Repository(store, system_context("loader"))
    if data.get("resourceType") == "Bundle" and data.get("type") in ("transaction", "batch", "collection"):
        if data["type"] == "collection":
            data = {
                **data,
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": e.get("fullUrl"),
                        "resource": e["resource"],
                        "request": {
                            "method": "PUT",
                            "url": f"{e['resource']['resourceType']}/{e['resource']['id']}",
                        },
                    }
                    for e in data.get("entry", [])
                ],
            }
        entries: list[Entry] = _parse_entries(data, store.fhir_base)
        with repo.writer() as uow:
            _run(uow, repo, entries, store.fhir_base, False)
        return len(entries)
    if "resourceType" not in data or "id" not in data:
        raise invalid("a loaded resource needs resourceType and id")
    validate_resource(data)
    with repo.writer() as uow:
        uow.update(data)
    return 1


def load_file(store: Store, path: Path) -> int:
    return load_json(store, orjson.loads(path.read_bytes()))
