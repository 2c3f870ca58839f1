"""`$validate` (https://hl7.org/fhir/R4/resource-operation-validate.html).

Type level (`POST [type]/$validate` with the resource, or Parameters with `resource`,
`profile`, `mode`) and instance level (`GET|POST [type]/[id]/$validate?profile=`). Always
answers 200 with an OperationOutcome; a resource with errors is not an HTTP error here.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type, parse_json, read_body
from gateway.fhir.errors import invalid, issue, outcome
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations import Operation, register
from gateway.fhir.resource_types import SUPPORTED_TYPES
from gateway.fhir.responses import json_response
from gateway.fhir.services import services_of
from gateway.record.validation import shared_validator


def run_validate(resource: dict[str, Any], *, profile: str | None, mode: str | None) -> dict[str, Any]:
    issues = shared_validator().validate(resource, profile=profile, mode=mode)
    if not issues:
        issues = [issue("informational", "validation found no problems", severity="information")]
    return outcome(issues)


def _parameters(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, str | None]:
    if body.get("resourceType") != "Parameters":
        return body, None, None
    resource, profile, mode = None, None, None
    for p in body.get("parameter") or []:
        name = p.get("name")
        if name == "resource":
            resource = p.get("resource")
        elif name == "profile":
            profile = p.get("valueUri") or p.get("valueCanonical")
        elif name == "mode":
            mode = p.get("valueCode")
    return resource, profile, mode


async def handle(request: Request) -> Response:
    services = services_of(request)
    rtype: str = request.path_params["rtype"]
    rid: str | None = request.path_params.get("rid") if "op" in request.path_params else None
    check_type(rtype)
    repo = repository(request)
    repo.allow("read" if rid else "create", rtype)
    profile = request.query_params.get("profile")
    mode = request.query_params.get("mode")
    resource: dict[str, Any] | None = None
    if request.method == "POST":
        resource, body_profile, body_mode = _parameters(
            parse_json(await read_body(request, services.settings.max_body_bytes))
        )
        profile, mode = body_profile or profile, body_mode or mode
    if resource is None and rid is not None:
        stored = await in_thread(lambda: services.store.read(rtype, rid))
        resource = stored.json()
    if resource is None:
        raise invalid("$validate needs a resource (the body, or Parameters.resource)")
    if resource.get("resourceType") != rtype:
        raise invalid(f"$validate on {rtype} got a {resource.get('resourceType')!r}")
    return json_response(await in_thread(lambda: run_validate(resource, profile=profile, mode=mode)))


register(
    Operation(
        name="validate",
        handler=handle,
        types=tuple(sorted(SUPPORTED_TYPES)),
        instance=True,
        type_level=True,
        definition="http://hl7.org/fhir/OperationDefinition/Resource-validate",
    )
)
