"""create, and conditional create with If-None-Exist (https://hl7.org/fhir/R4/http.html#create)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import parse_resource, read_body
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.interactions.conditional import matching_ids, multiple_matches
from gateway.fhir.repository import Repository
from gateway.fhir.responses import Prefer, write_response
from gateway.fhir.services import services_of
from gateway.fhir.validate import validate_resource
from gateway.store.api import StoredResource, UnitOfWork


def create_in(
    uow: UnitOfWork, repo: Repository, data: dict[str, Any], if_none_exist: str | None = None
) -> tuple[StoredResource, int]:
    """Create (201) or, when If-None-Exist matches one resource the caller may see, return it (200)."""
    rtype = data["resourceType"]
    if if_none_exist:
        ids = matching_ids(uow, repo, rtype, if_none_exist)
        if len(ids) > 1:
            raise multiple_matches(rtype, if_none_exist)
        if ids:
            return uow.read(rtype, ids[0]), 200
    return uow.create(data), 201  # the server assigns the id, whatever the body says


async def create(request: Request) -> Response:
    services = services_of(request)
    rtype = request.path_params["rtype"]
    data = parse_resource(await read_body(request, services.settings.max_body_bytes), rtype)
    validate_resource(data)
    repo = repository(request, client_in_transaction=True)
    repo.allow("create", rtype)
    if_none_exist = request.headers.get("if-none-exist")

    def work() -> tuple[StoredResource, int]:
        with repo.writer() as uow:
            return create_in(uow, repo, data, if_none_exist)

    stored, status = await in_thread(work)
    message = "created" if status == 201 else "an existing resource matched If-None-Exist; nothing created"
    return write_response(stored, status, Prefer.from_request(request), services.fhir_base, message)
