"""`GET /api/ward-list`: the night-shift ward list for hospital and out-of-hours systems that pull it.

Query: `ward` (Location id; absent = every ward), `organization` (the receiving organisation,
`Organization/<id>`), `format` = `fhir-list` (default) | `fhir-group` | `csv`.

Whose view: a caller bound to an organisation gets its own organisation's view and may not ask for
another's (403); a system caller may name any receiving organisation and gets exactly what that
organisation may see. Everything passes the request's Repository, so the consent engine decides.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.alerts.registry import relative_ref
from gateway.alerts.ward_list_service import (
    CSV_MEDIA_TYPE,
    FORMATS,
    WardListConfig,
    current_ward_list,
    patient_visibility,
    receiver_repository,
    render,
    ward_entries,
    ward_label,
)
from gateway.fhir.errors import forbidden, invalid
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.repository import Repository
from gateway.fhir.services import Services, services_of
from gateway.logging import get_logger

log = get_logger("gateway.web.ward_list")

PATH = "/api/ward-list"
_SAFE = re.compile(r"[^A-Za-z0-9.-]")
_NO_STORE = {"Cache-Control": "no-store"}  # a list of named people: no shared caches


def _viewer(repo: Repository, asked: str | None, guard: Any) -> tuple[Repository, str | None]:
    """The repository to decide visibility with, and the receiving organisation's reference."""
    own = relative_ref(repo.access.organization) or repo.access.organization
    wanted = (relative_ref(asked) or asked) if asked else None
    if wanted is None:
        return repo, own
    if repo.access.is_system:
        return receiver_repository(repo.store, wanted, guard), wanted
    if own is not None and own != wanted:
        raise forbidden("a caller receives only its own organisation's ward list")
    return repo, wanted


async def get_ward_list(request: Request) -> Response:
    services: Services = services_of(request)
    params = request.query_params
    fmt = params.get("format", "fhir-list")
    if fmt not in FORMATS:
        raise invalid(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", ["format"])
    ward = params.get("ward") or None
    repo = repository(request)
    repo.allow("search", "Patient")
    viewer, receiving = _viewer(repo, params.get("organization") or None, services.extras.get("guard"))
    config = WardListConfig.from_sources(services.settings, services.extras)
    now = datetime.now(config.zone)

    def build() -> tuple[Any, str]:
        with viewer.reader() as uow:
            entries = ward_entries(uow, ward=ward, now=now)
            visible = patient_visibility(viewer, uow, [e.patient_id for e in entries])
            rows = current_ward_list(uow, ward=ward, visible=visible, entries=entries)
        ward_id, ward_name = ward_label(ward, entries)
        log.info("ward_list.served", ward=ward_id, organization=receiving, rows=len(rows), format=fmt)
        return render(
            rows,
            fmt=fmt,
            ward_id=ward_id,
            ward_name=ward_name,
            organisation_ref=receiving,
            source_ref=config.source,
            now=now,
        )

    doc, media_type = await in_thread(build)
    if media_type == CSV_MEDIA_TYPE:
        name = f"ward-list-{_SAFE.sub('_', ward or 'all')}-{now.strftime('%Y%m%d')}.csv"
        headers = {**_NO_STORE, "Content-Disposition": f'attachment; filename="{name}"'}
        return Response(str(doc), media_type=CSV_MEDIA_TYPE, headers=headers)
    return Response(orjson.dumps(doc), media_type=media_type, headers=_NO_STORE)


def ward_list_routes() -> list[Route]:
    return [Route(PATH, get_ward_list, methods=["GET"])]


def install(app: Any, services: Services) -> None:
    """Add the ward-list route (the nightly push is installed by `gateway.alerts.ward_list_push`)."""
    app.router.routes.extend(ward_list_routes())
