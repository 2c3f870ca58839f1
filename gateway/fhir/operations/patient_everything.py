"""`Patient/[id]/$everything` (https://hl7.org/fhir/R4/patient-operation-everything.html).

GET or POST (query string, or a Parameters body). Parameters: `start`, `end` (care dates),
`_since` (meta.lastUpdated), `_type` (comma-separated or repeated), `_count` (page size) and
`_page` (the offset of the page; the gateway writes it into the `next` / `previous` links).
The answer is a searchset Bundle of the stored bytes; the work is `gateway.record.everything`.

Paging is by offset over the whole consent-filtered, de-duplicated record, which is recomputed
for each page: simple and correct while the record does not change between pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import operation_parameters
from gateway.fhir.bundles import searchset
from gateway.fhir.errors import invalid
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations import Operation, register
from gateway.fhir.repository import Repository, no_loading
from gateway.fhir.responses import json_response
from gateway.fhir.services import Services, services_of
from gateway.record.everything import EverythingParams, MaySee, Visible, patient_everything
from gateway.store.api import StoredResource, UnitOfWork

FILTER_NAMES = ("start", "end", "_since", "_type")
_VALUE_KEYS = ("valueDate", "valueDateTime", "valueInstant", "valueString", "valueCode", "valueInteger", "valueUri")


@dataclass(frozen=True)
class EverythingRequest:
    """One page request of an `$everything` operation, parsed once."""

    filters: tuple[tuple[str, str], ...]  # the filter parameters as given (for page links)
    params: EverythingParams
    count: int
    offset: int


async def request_items(request: Request, services: Services) -> list[tuple[str, str]]:
    """Query parameters, plus the Parameters body of a POST (its values as strings)."""
    return await operation_parameters(
        request, services.settings.max_body_bytes, operation="$everything", value_keys=_VALUE_KEYS
    )


def _int(name: str, text: str | None, default: int, maximum: int | None = None) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise invalid(f"{name} must be a non-negative integer, not {text!r}")
    value = int(text)
    return min(value, maximum) if maximum is not None else value


def parse_everything(items: list[tuple[str, str]], services: Services) -> EverythingRequest:
    """Raises FhirError (400) for a malformed date, count or page offset."""
    last = dict(items)
    types = [t.strip() for name, value in items if name == "_type" for t in value.split(",") if t.strip()]
    try:
        params = EverythingParams.parse(
            start=last.get("start"), end=last.get("end"), since=last.get("_since"), types=types
        )
    except ValueError as exc:
        raise invalid(str(exc)) from exc
    filters = tuple((name, value) for name, value in items if name in FILTER_NAMES)
    settings = services.settings
    count = _int("_count", last.get("_count"), settings.default_page_size, settings.max_page_size)
    return EverythingRequest(filters, params, count, _int("_page", last.get("_page"), 0))


def consent_filter(repo: Repository, query: str) -> Visible:
    """The consent engine as the record builder sees it: one audited decision per batch."""

    def visible(uow: UnitOfWork, rows: list[StoredResource]) -> list[StoredResource]:
        return repo.visible(uow, rows, interaction="search", query=query)

    return visible


def focus_check(repo: Repository) -> MaySee:
    """The operation's focus decided as a count (not a disclosure, remembered in the transaction):
    it is audited with the record it opens, so one request makes one AuditEvent."""

    def may_see(uow: UnitOfWork, row: StoredResource) -> bool:
        return repo.count_visible(uow, [row], no_loading)[0]

    return may_see


def page_bundle(fhir_base: str, path: str, rows: list[StoredResource], req: EverythingRequest) -> bytes:
    """One page of the record as a searchset, with self / first / previous / next links."""

    def url(offset: int) -> str:
        return f"{fhir_base}/{path}?" + urlencode([*req.filters, ("_count", str(req.count)), ("_page", str(offset))])

    page = rows[req.offset : req.offset + req.count] if req.count else []
    links = {"self": url(req.offset), "first": url(0)}
    if req.count and req.offset > 0:
        links["previous"] = url(max(req.offset - req.count, 0))
    if req.count and req.offset + req.count < len(rows):
        links["next"] = url(req.offset + req.count)
    return searchset(fhir_base, page, [], total=len(rows), links=links)


def run_patient_everything(repo: Repository, patient_id: str, req: EverythingRequest, fhir_base: str) -> bytes:
    path = f"Patient/{patient_id}/$everything"
    with repo.reader() as uow:
        rows = patient_everything(
            uow,
            patient_id,
            req.params,
            consent_filter(repo, path),
            linked=lambda ids: repo.expect_patients(uow, ids),
            may_see=focus_check(repo),
        )
    return page_bundle(fhir_base, path, rows, req)


async def handle(request: Request) -> Response:
    services = services_of(request)
    repo = repository(request, client_in_transaction=True)
    repo.allow("read", "Patient")
    req = parse_everything(await request_items(request, services), services)
    patient_id: str = request.path_params["rid"]
    return json_response(await in_thread(lambda: run_patient_everything(repo, patient_id, req, services.fhir_base)))


register(
    Operation(
        name="everything",
        handler=handle,
        types=("Patient",),
        instance=True,
        definition="http://hl7.org/fhir/OperationDefinition/Patient-everything",
    )
)
