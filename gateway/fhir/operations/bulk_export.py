"""`$export` at system, Patient and Group level (https://hl7.org/fhir/uv/bulkdata/export.html).

Thin handlers: the kick-off, the jobs and the files are `gateway.fhir.export`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.export.params import GROUP, PATIENT, SYSTEM
from gateway.fhir.export.web import kick_off
from gateway.fhir.operations import Operation, register

DEFINITIONS = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"


async def system_export(request: Request) -> Response:
    return await kick_off(request, SYSTEM)


async def patient_export(request: Request) -> Response:
    return await kick_off(request, PATIENT)


async def group_export(request: Request) -> Response:
    return await kick_off(request, GROUP, request.path_params["rid"])


register(Operation(name="export", handler=system_export, definition=f"{DEFINITIONS}/export"))
register(
    Operation(
        name="export",
        handler=patient_export,
        types=("Patient",),
        type_level=True,
        definition=f"{DEFINITIONS}/patient-export",
    )
)
register(
    Operation(
        name="export",
        handler=group_export,
        types=("Group",),
        instance=True,
        definition=f"{DEFINITIONS}/group-export",
    )
)
