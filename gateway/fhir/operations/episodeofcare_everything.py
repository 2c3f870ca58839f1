"""`EpisodeOfCare/[id]/$everything`: one episode of case management, for the team working it.

Not a standard R4 operation (R5 defines it); this is the gateway's own, with the same paging and
filters as `Patient/$everything` (`_since`, `_type`, `_count`, `_page`). What it gathers is
described in `gateway.record.everything.episode_everything`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations import Operation, register
from gateway.fhir.operations.patient_everything import (
    EverythingRequest,
    consent_filter,
    focus_check,
    page_bundle,
    parse_everything,
    request_items,
)
from gateway.fhir.repository import Repository
from gateway.fhir.responses import json_response
from gateway.fhir.services import services_of
from gateway.record.everything import episode_everything


def run_episode_everything(repo: Repository, episode_id: str, req: EverythingRequest, fhir_base: str) -> bytes:
    path = f"EpisodeOfCare/{episode_id}/$everything"
    with repo.reader() as uow:
        rows = episode_everything(uow, episode_id, req.params, consent_filter(repo, path), may_see=focus_check(repo))
    return page_bundle(fhir_base, path, rows, req)


async def handle(request: Request) -> Response:
    services = services_of(request)
    repo = repository(request)
    repo.allow("read", "EpisodeOfCare")
    req = parse_everything(await request_items(request, services), services)
    episode_id: str = request.path_params["rid"]
    return json_response(await in_thread(lambda: run_episode_everything(repo, episode_id, req, services.fhir_base)))


register(
    Operation(
        name="everything",
        handler=handle,
        types=("EpisodeOfCare",),
        instance=True,
        definition="https://care-gateway.example.org/fhir/OperationDefinition/EpisodeOfCare-everything",
    )
)
