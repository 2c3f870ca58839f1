"""update (PUT, create-on-update), conditional update, If-Match (https://hl7.org/fhir/R4/http.html#update)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type, parse_resource, read_body
from gateway.fhir.errors import invalid
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.interactions.conditional import matching_ids, multiple_matches, not_writable, parse_if_match
from gateway.fhir.repository import Repository
from gateway.fhir.responses import Prefer, write_response
from gateway.fhir.services import services_of
from gateway.fhir.validate import validate_resource
from gateway.store.api import StoredResource, UnitOfWork, new_id


def update_in(
    uow: UnitOfWork, repo: Repository, data: dict[str, Any], if_match: int | None = None
) -> tuple[StoredResource, int]:
    repo.check_update(uow, data["resourceType"], data["id"])  # a patient/ scope: a live resource of its context
    if not repo.may_write(uow, data["resourceType"], data["id"], "update"):
        raise not_writable(data["resourceType"], data["id"])
    stored, created = uow.update(data, if_match=if_match)
    return stored, 201 if created else 200


def conditional_update_in(
    uow: UnitOfWork,
    repo: Repository,
    rtype: str,
    query: str | list[tuple[str, str]],
    data: dict[str, Any],
    if_match: int | None = None,
) -> tuple[StoredResource, int]:
    """PUT Type?criteria: no match creates, one match updates it, several fail with 412."""
    ids = matching_ids(uow, repo, rtype, query)
    text = query if isinstance(query, str) else "&".join(f"{k}={v}" for k, v in query)
    if len(ids) > 1:
        raise multiple_matches(rtype, text)
    if ids:
        if "id" in data and data["id"] != ids[0]:
            raise invalid(f"the body's id {data['id']!r} is not the matching resource {ids[0]!r}")
        data = {**data, "id": ids[0]}
        return update_in(uow, repo, data, if_match)
    data = {**data, "id": data.get("id") or new_id()}
    return update_in(uow, repo, data, if_match)


async def update(request: Request) -> Response:
    services = services_of(request)
    rtype, rid = request.path_params["rtype"], request.path_params["rid"]
    data = parse_resource(await read_body(request, services.settings.max_body_bytes), rtype, rid)
    validate_resource(data)
    repo = repository(request, client_in_transaction=True)
    repo.allow("update", rtype)
    if_match = parse_if_match(request.headers.get("if-match"))

    def work() -> tuple[StoredResource, int]:
        with repo.writer() as uow:
            return update_in(uow, repo, data, if_match)

    stored, status = await in_thread(work)
    return write_response(stored, status, Prefer.from_request(request), services.fhir_base, "updated")


async def conditional_update(request: Request) -> Response:
    services = services_of(request)
    rtype = request.path_params["rtype"]
    check_type(rtype)
    data = parse_resource(await read_body(request, services.settings.max_body_bytes), rtype)
    validate_resource(data)
    repo = repository(request, client_in_transaction=True)
    repo.allow("update", rtype)
    items = parse_qsl(request.url.query, keep_blank_values=True)
    if_match = parse_if_match(request.headers.get("if-match"))

    def work() -> tuple[StoredResource, int]:
        with repo.writer() as uow:
            return conditional_update_in(uow, repo, rtype, items, data, if_match)

    stored, status = await in_thread(work)
    return write_response(stored, status, Prefer.from_request(request), services.fhir_base, "updated")
