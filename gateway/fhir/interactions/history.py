"""history: instance, type and system (https://hl7.org/fhir/R4/http.html#history).

Pages go back through versions by their commit sequence; `_since` limits by time. For a caller
who may not see everything, `gateway.fhir.search.history` counts and pages only visible versions.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type
from gateway.fhir.bundles import history as history_bundle
from gateway.fhir.errors import invalid, not_found
from gateway.fhir.interactions.common import audit_settled, in_thread, repository
from gateway.fhir.responses import json_response
from gateway.fhir.search.history import HistoryPage, guarded_history
from gateway.fhir.services import services_of
from gateway.store.search.kinds import date_range


async def history(request: Request) -> Response:
    services = services_of(request)
    rtype: str | None = request.path_params.get("rtype")
    rid: str | None = request.path_params.get("rid")
    if rtype:
        check_type(rtype)
    repo = repository(request, client_in_transaction=True)
    repo.allow("history", rtype or "*")
    params = request.query_params
    count_raw = params.get("_count", str(services.settings.default_page_size))
    before_raw = params.get("_before_seq")
    if not count_raw.isdigit() or (before_raw is not None and not before_raw.isdigit()):
        raise invalid("_count and the page cursor must be non-negative integers")
    count = min(int(count_raw), services.settings.max_page_size)
    since = None
    if "_since" in params:
        try:
            since = date_range(params["_since"])[0]
        except ValueError as exc:
            raise invalid(f"_since must be an instant, not {params['_since']!r}") from exc
    before = int(before_raw) if before_raw else None

    def work() -> HistoryPage:
        audit_settled(services, rtype)
        with repo.reader() as uow:
            if rtype and rid and uow.get(rtype, rid) is None:
                raise not_found(f"{rtype}/{rid}")
            if not repo.is_open:
                page = guarded_history(uow, repo, rtype, rid, since=since, before_seq=before, count=count)
                if rtype and rid and not page.versions and page.total == 0:
                    raise not_found(f"{rtype}/{rid}")  # a hidden resource's history answers like a missing one
                return page
            versions, total = uow.history(rtype, rid, since=since, before_seq=before, count=count)
            full = bool(versions) and len(versions) == count and versions[-1].seq is not None
            return HistoryPage(versions, total, versions[-1].seq if full else None)

    page = await in_thread(work)
    path = "/".join(p for p in (rtype, rid) if p)
    base = f"{services.fhir_base}/{path + '/' if path else ''}_history"
    keep = {k: v for k, v in params.items() if k in ("_count", "_since")}
    query = "&".join(f"{k}={v}" for k, v in keep.items())
    links = {"self": f"{base}?{query}" if query else base}
    if page.next_before_seq is not None:
        links["next"] = f"{base}?{query + '&' if query else ''}_before_seq={page.next_before_seq}"
    return json_response(history_bundle(services.fhir_base, page.versions, total=page.total, links=links))
