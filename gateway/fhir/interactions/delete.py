"""delete and conditional delete (https://hl7.org/fhir/R4/http.html#delete).

Deleting writes a tombstone version; reading it afterwards answers 410 Gone. Deleting
something that does not exist (or is already deleted) is not an error: 204 either way, so a
delete does not reveal whether the resource existed. Something the caller may not see is, to
that caller, not there: it answers the same 204 and stays as it was (the refusal is audited).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.interactions.conditional import matching_ids, multiple_matches
from gateway.fhir.repository import Repository
from gateway.store.api import StoredResource, UnitOfWork


def delete_in(uow: UnitOfWork, repo: Repository, rtype: str, rid: str) -> StoredResource | None:
    if not repo.may_write(uow, rtype, rid, "delete"):
        return None
    return uow.delete(rtype, rid)


async def delete(request: Request) -> Response:
    rtype, rid = request.path_params["rtype"], request.path_params["rid"]
    check_type(rtype)
    repo = repository(request, client_in_transaction=True)
    repo.allow("delete", rtype)

    def work() -> StoredResource | None:
        with repo.writer() as uow:
            return delete_in(uow, repo, rtype, rid)

    tombstone = await in_thread(work)
    headers = {"ETag": tombstone.etag} if tombstone else None
    return Response(status_code=204, headers=headers)


async def conditional_delete(request: Request) -> Response:
    rtype = request.path_params["rtype"]
    check_type(rtype)
    repo = repository(request, client_in_transaction=True)
    repo.allow("delete", rtype)
    query = request.url.query

    def work() -> None:
        with repo.writer() as uow:
            ids = matching_ids(uow, repo, rtype, parse_qsl(query, keep_blank_values=True))
            if len(ids) > 1:
                raise multiple_matches(rtype, query)
            for rid in ids:
                delete_in(uow, repo, rtype, rid)

    await in_thread(work)
    return Response(status_code=204)
