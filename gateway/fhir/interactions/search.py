"""search-type, GET and POST _search (https://hl7.org/fhir/R4/http.html#search, search.html).

Paging uses signed keyset cursors (see `gateway.fhir.search.paging`); `total` and the page
are computed over what the caller may see.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type, read_body
from gateway.fhir.bundles import elements_filter, searchset, summary_data
from gateway.fhir.errors import invalid
from gateway.fhir.interactions.common import audit_settled, in_thread, parse_request_search, repository
from gateway.fhir.responses import Prefer, json_response
from gateway.fhir.search.guarded import search_as
from gateway.fhir.search.paging import page_url, search_scope
from gateway.fhir.services import services_of
from gateway.store.search.query import Cursor


async def _items(request: Request, post: bool) -> list[tuple[str, str]]:
    items = parse_qsl(request.url.query, keep_blank_values=True)
    if post:
        ctype = request.headers.get("content-type", "")
        if ctype and not ctype.startswith("application/x-www-form-urlencoded"):
            raise invalid("POST _search takes an application/x-www-form-urlencoded body")
        body = await read_body(request, services_of(request).settings.max_body_bytes)
        items += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return items


async def search(request: Request) -> Response:
    return await _search(request, post=False)


async def search_post(request: Request) -> Response:
    return await _search(request, post=True)


async def _search(request: Request, *, post: bool) -> Response:
    services = services_of(request)
    rtype = request.path_params["rtype"]
    check_type(rtype)
    repo = repository(request, client_in_transaction=True)
    repo.allow("search", rtype)
    parsed = parse_request_search(services, rtype, await _items(request, post), Prefer.from_request(request))
    scope = search_scope(rtype, parsed.canonical, repo.access.client_id)
    query = parsed.query
    if parsed.cursor_token:
        query = replace(query, cursor=services.signer.verify(parsed.cursor_token, scope))

    query_text = request.url.query

    def work() -> Any:
        audit_settled(services, rtype)
        with repo.reader() as uow:
            page = search_as(uow, repo, query, query_text)
            return page, page.rows, page.included

    page, matches, included = await in_thread(work)
    base = f"{services.fhir_base}/{rtype}"
    links = {"self": page_url(base, parsed.canonical, parsed.cursor_token)}
    if page.has_next and page.last_key is not None:
        links["next"] = page_url(base, parsed.canonical, services.signer.sign(Cursor(False, page.last_key), scope))
    if page.has_previous and page.first_key is not None:
        links["previous"] = page_url(base, parsed.canonical, services.signer.sign(Cursor(True, page.first_key), scope))
    shape = (
        elements_filter(parsed.elements) if parsed.elements else (summary_data if parsed.summary == "data" else None)
    )
    body = searchset(
        services.fhir_base, matches, included, total=page.total, links=links, issues=parsed.issues, shape=shape
    )
    return json_response(body)
