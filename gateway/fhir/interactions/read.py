"""read and vread (https://hl7.org/fhir/R4/http.html#read, #vread).

A resource the caller may not see answers exactly like one that does not exist (404).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type
from gateway.fhir.errors import invalid, not_found
from gateway.fhir.interactions.common import audit_settled, in_thread, repository
from gateway.fhir.responses import resource_response
from gateway.fhir.services import services_of
from gateway.store.api import StoredResource


async def read(request: Request) -> Response:
    rtype, rid = request.path_params["rtype"], request.path_params["rid"]
    check_type(rtype)
    repo = repository(request, client_in_transaction=True)
    repo.allow("read", rtype)
    services = services_of(request)

    def work() -> StoredResource:
        audit_settled(services, rtype)
        with repo.reader() as uow:
            stored = uow.read(rtype, rid)
            if not repo.visible(uow, [stored]):
                raise not_found(f"{rtype}/{rid}")
            return stored

    return resource_response(await in_thread(work), services.fhir_base)


async def vread(request: Request) -> Response:
    rtype, rid, vid = request.path_params["rtype"], request.path_params["rid"], request.path_params["vid"]
    check_type(rtype)
    if not vid.isdigit():
        raise invalid(f"version id must be a number, not {vid!r}")
    repo = repository(request, client_in_transaction=True)
    repo.allow("read", rtype)
    services = services_of(request)

    def work() -> StoredResource:
        audit_settled(services, rtype)
        with repo.reader() as uow:
            stored = uow.vread(rtype, rid, int(vid))
            if not repo.visible(uow, [stored]):
                raise not_found(f"{rtype}/{rid}/_history/{vid}")
            return stored

    return resource_response(await in_thread(work), services.fhir_base)
