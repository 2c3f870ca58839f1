"""capabilities: `GET /metadata` (https://hl7.org/fhir/R4/http.html#capabilities).

Built from the same tables the server runs on (resource types, search parameters, operations),
so it states exactly what works.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.resource_types import SUPPORTED_TYPES
from gateway.fhir.responses import json_response
from gateway.fhir.services import services_of
from gateway.store.search.registry import SearchRegistry

INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type")
SEARCH_RESULT_PARAMS = ("_count", "_sort", "_include", "_revinclude", "_summary", "_total", "_elements")


def capability_statement(
    *,
    fhir_base: str,
    registry: SearchRegistry,
    operations: list[dict[str, Any]],
    version: str,
    security: dict[str, Any] | None,
) -> dict[str, Any]:
    resources = []
    for rtype in sorted(SUPPORTED_TYPES):
        params = registry.params_for(rtype)
        entry: dict[str, Any] = {
            "type": rtype,
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "conditionalRead": "not-supported",
            "referencePolicy": ["literal", "local"],
            "interaction": [{"code": code} for code in INTERACTIONS],
            "searchInclude": sorted(f"{rtype}:{p.code}" for p in params.values() if p.type == "reference"),
            "searchRevInclude": sorted(
                f"{other}:{p.code}"
                for other in SUPPORTED_TYPES
                for p in registry.params_for(other).values()
                if p.type == "reference" and (not p.targets or rtype in p.targets) and p.base != "Resource"
            ),
            "searchParam": [
                {"name": p.code, "definition": p.url, "type": p.type}
                for p in sorted(params.values(), key=lambda p: p.code)
            ],
        }
        ops = [o for o in operations if rtype in o.get("types", ())]
        if ops:
            entry["operation"] = [{"name": o["name"], "definition": o["definition"]} for o in ops]
        resources.append(entry)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": (
            "Search: token (system|code, |code, system|, :not), string (prefix, :exact, :contains), date (all "
            "prefixes, partial dates; values without a zone are UTC), reference (Type/id, id, absolute URL, "
            ":Type), number, quantity, uri; :missing on every type; one level of chaining; _has; "
            f"result parameters {', '.join(SEARCH_RESULT_PARAMS)}; _summary=count|data|false only. "
            "Page links are signed keyset cursors bound to the search and the caller."
        ),
        "resource": resources,
        "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
        "searchParam": [{"name": n, "type": "special"} for n in SEARCH_RESULT_PARAMS],
    }
    system_ops = [o for o in operations if not o.get("types")]
    if system_ops:
        rest["operation"] = [{"name": o["name"], "definition": o["definition"]} for o in system_ops]
    if security:
        rest["security"] = security
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "kind": "instance",
        "software": {"name": "care-gateway", "version": version},
        "implementation": {"description": "Care gateway: integrated health and social care", "url": fhir_base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }


async def capabilities(request: Request) -> Response:
    services = services_of(request)
    cached = services.extras.get("capability_statement")
    if cached is None:
        from gateway.fhir.operations import OPERATIONS

        cached = capability_statement(
            fhir_base=services.fhir_base,
            registry=services.store.registry,
            operations=[op.capability() for op in OPERATIONS],
            version="0.1.0",
            security=services.extras.get("capability_security"),
        )
        services.extras["capability_statement"] = cached
    return json_response(cached)
