"""`Patient/$match` (https://hl7.org/fhir/R4/patient-operation-match.html).

Input Parameters (`resource`, `onlyCertainMatches`, `count`); output a searchset with
`entry.search.score` and the match-grade extension. Candidates the caller may not see are
dropped before the Bundle is built, so `$match` is no oracle for hidden people.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import parse_json, read_body
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations import Operation, register
from gateway.fhir.repository import Repository
from gateway.fhir.responses import json_response
from gateway.fhir.services import Services, services_of
from gateway.identity.match_bundle import DEFAULT_COUNT, MAX_COUNT, build_match_bundle, parse_match_parameters
from gateway.identity.patient_index import PatientIndex
from gateway.identity.person import PersonRecord


def patient_index(services: Services) -> PatientIndex:
    index = services.extras.get("patient_index")
    if index is None:
        index = services.extras["patient_index"] = PatientIndex(services.store)
    assert isinstance(index, PatientIndex)
    return index


def run_match(parameters: Any, *, index: PatientIndex, repo: Repository, fhir_base: str) -> dict[str, Any]:
    request = parse_match_parameters(parameters)
    index.sync()
    query = PersonRecord.from_patient(request.resource)
    limit = None if request.only_certain_matches else min(request.count or DEFAULT_COUNT, MAX_COUNT)
    results = index.matcher.match(query, index.index, limit=limit)
    with repo.reader() as uow:
        stored = uow.fetch_many(("Patient", r.record_id) for r in results)
        visible = {s.id: s.json() for s in repo.visible(uow, stored)}
    results = [r for r in results if r.record_id in visible]
    return build_match_bundle(
        results,
        resource_for=lambda rid: visible[rid],
        only_certain_matches=request.only_certain_matches,
        count=request.count,
        base_url=fhir_base,
    )


async def handle(request: Request) -> Response:
    services = services_of(request)
    repo = repository(request)
    repo.allow("search", "Patient")
    body = parse_json(await read_body(request, services.settings.max_body_bytes))
    index = patient_index(services)
    return json_response(await in_thread(lambda: run_match(body, index=index, repo=repo, fhir_base=services.fhir_base)))


register(
    Operation(
        name="match",
        handler=handle,
        types=("Patient",),
        type_level=True,
        methods=("POST",),
        definition="http://hl7.org/fhir/OperationDefinition/Patient-match",
    )
)
