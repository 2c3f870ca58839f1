"""history: instance, type and system (https://hl7.org/fhir/R4/http.html#history).

Pages go back through versions by their commit sequence; `_since` limits by time.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir.body import check_type
from gateway.fhir.bundles import history as history_bundle
from gateway.fhir.errors import invalid, not_found
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.responses import json_response
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

    def work() -> Any:
        with repo.reader() as uow:
            if rtype and rid and uow.get(rtype, rid) is None:
                raise not_found(f"{rtype}/{rid}")
            versions, total = uow.history(rtype, rid, since=since, before_seq=before, count=count)
            if repo.is_open:
                return versions, total, versions
            shown = repo.visible(uow, versions, interaction="history")
            if rtype and rid and not shown:
                raise not_found(f"{rtype}/{rid}")  # a hidden resource's history answers like a missing one
            return shown, len(shown), versions

    visible, total, versions = await in_thread(work)
    path = "/".join(p for p in (rtype, rid) if p)
    base = f"{services.fhir_base}/{path + '/' if path else ''}_history"
    keep = {k: v for k, v in params.items() if k in ("_count", "_since")}
    query = "&".join(f"{k}={v}" for k, v in keep.items())
    links = {"self": f"{base}?{query}" if query else base}
    if len(versions) == count and versions and versions[-1].seq is not None:
        links["next"] = f"{base}?{query + '&' if query else ''}_before_seq={versions[-1].seq}"
    return json_response(history_bundle(services.fhir_base, visible, total=total, links=links))
