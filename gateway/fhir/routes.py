"""The route table: every FHIR endpoint, in one place, pointing at its interaction module."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.fhir.errors import FhirError
from gateway.fhir.export import web as export_web
from gateway.fhir.interactions import bundle, capabilities, create, delete, history, read, search, update
from gateway.fhir.operations import OPERATIONS, Operation
from gateway.fhir.operations import bulk_export as _bulk_export  # noqa: F401  (registers)
from gateway.fhir.operations import patient_match as _patient_match  # noqa: F401  (registers)
from gateway.fhir.operations import registry_imports as _record_ops  # noqa: F401  (registers)
from gateway.fhir.operations import resource_validate as _resource_validate  # noqa: F401  (registers)
from gateway.fhir.operations import subscription_events as _sub_events  # noqa: F401  (registers)
from gateway.fhir.operations import subscription_status as _sub_status  # noqa: F401  (registers)
from gateway.fhir.operations import subscription_ws_token as _sub_ws  # noqa: F401  (registers)


def _find_operation(name: str, rtype: str | None, *, instance: bool) -> Operation:
    for op in OPERATIONS:
        if op.name != name:
            continue
        if rtype is None and not op.types:
            return op
        if rtype is not None and rtype in op.types and (op.instance if instance else op.type_level):
            return op
    where = f"{rtype}/{'[id]/' if instance else ''}" if rtype else ""
    raise FhirError("not-supported", f"operation {where}${name} is not supported", status=404)


async def _op_or_read(request: Request) -> Response:
    rid: str = request.path_params["rid"]
    if rid.startswith("$"):
        return await _find_operation(rid[1:], request.path_params["rtype"], instance=False).handler(request)
    if rid == "_search":
        return await search.search(request)
    return await read.read(request)


async def _op_type_post(request: Request) -> Response:
    rid: str = request.path_params["rid"]
    if rid == "_search":
        return await search.search_post(request)
    if rid.startswith("$"):
        return await _find_operation(rid[1:], request.path_params["rtype"], instance=False).handler(request)
    raise FhirError("not-supported", "POST to a resource id is not supported; use PUT to update", status=405)


async def _op_instance(request: Request) -> Response:
    name: str = request.path_params["op"]
    if not name.startswith("$"):
        raise FhirError("not-found", f"unknown path segment {name!r}", status=404)
    return await _find_operation(name[1:], request.path_params["rtype"], instance=True).handler(request)


async def _op_system(request: Request) -> Response:
    name: str = request.path_params["rtype"]
    if name.startswith("$"):
        return await _find_operation(name[1:], None, instance=False).handler(request)
    if request.method == "GET":
        return await search.search(request)
    return await create.create(request)


def fhir_routes(prefix: str = "/fhir") -> list[Route]:
    return [
        Route(f"{prefix}/metadata", capabilities.capabilities, methods=["GET"]),
        # Bulk Data export status and files: ahead of the {rtype}/{rid} routes they would match.
        Route(f"{prefix}/{export_web.STATUS_PATH}", export_web.status, methods=["GET"]),
        Route(f"{prefix}/{export_web.STATUS_PATH}", export_web.cancel, methods=["DELETE"]),
        Route(f"{prefix}/{export_web.FILE_PATH}/{{job}}/{{name}}", export_web.download, methods=["GET"]),
        Route(f"{prefix}", bundle.bundle, methods=["POST"]),
        Route(f"{prefix}/", bundle.bundle, methods=["POST"]),
        Route(f"{prefix}/_history", history.history, methods=["GET"]),
        Route(f"{prefix}/{{rtype}}", _op_system, methods=["GET", "POST"]),
        Route(f"{prefix}/{{rtype}}", update.conditional_update, methods=["PUT"]),
        Route(f"{prefix}/{{rtype}}", delete.conditional_delete, methods=["DELETE"]),
        Route(f"{prefix}/{{rtype}}/_history", history.history, methods=["GET"]),
        Route(f"{prefix}/{{rtype}}/{{rid}}", _op_or_read, methods=["GET"]),
        Route(f"{prefix}/{{rtype}}/{{rid}}", _op_type_post, methods=["POST"]),
        Route(f"{prefix}/{{rtype}}/{{rid}}", update.update, methods=["PUT"]),
        Route(f"{prefix}/{{rtype}}/{{rid}}", delete.delete, methods=["DELETE"]),
        Route(f"{prefix}/{{rtype}}/{{rid}}/_history", history.history, methods=["GET"]),
        Route(f"{prefix}/{{rtype}}/{{rid}}/_history/{{vid}}", read.vread, methods=["GET"]),
        Route(f"{prefix}/{{rtype}}/{{rid}}/{{op}}", _op_instance, methods=["GET", "POST"]),
    ]
