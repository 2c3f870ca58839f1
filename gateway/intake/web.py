"""Wiring the intake to the outside: the MLLP listener, `POST /intake/hl7v2`, and app hooks.

The intake itself is synchronous (one database transaction per message); here it runs in a
worker thread so the event loop keeps reading other connections while a message commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.fhir.services import Services, services_of
from gateway.intake.hl7v2_intake import Hl7Intake
from gateway.intake.mllp import start_mllp_server
from gateway.intake.social_care_intake import SocialCareIntake
from gateway.intake.sources import SourceRegistry
from gateway.mappings.social_care import UnreadableExtract

log = structlog.get_logger(__name__)

HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"
EXTRA_KEY = "hl7_intake"
SOCIAL_CARE_KEY = "social_care_intake"
SOURCES_KEY = "intake_sources"


def mllp_handler(intake: Hl7Intake) -> Callable[[bytes], Awaitable[bytes]]:
    """An MLLP handler: the ACK is returned only after `intake.handle` committed."""

    async def handle(raw: bytes) -> bytes:
        return await asyncio.to_thread(intake.handle, raw)

    return handle


def sources_of(services: Services) -> SourceRegistry:
    """The registered sources (default file until a setting names another; set the extra to override)."""
    sources = services.extras.get(SOURCES_KEY)
    if sources is None:
        sources = SourceRegistry.load(base_url=services.settings.base_url)
        services.extras[SOURCES_KEY] = sources
    assert isinstance(sources, SourceRegistry)
    return sources


def hl7_intake_of(services: Services) -> Hl7Intake:
    """The process's HL7 intake, built on first use (one per process: it holds the patient locks)."""
    intake = services.extras.get(EXTRA_KEY)
    if intake is None:
        intake = Hl7Intake(services.store, sources_of(services))
        services.extras[EXTRA_KEY] = intake
    assert isinstance(intake, Hl7Intake)
    return intake


def social_care_intake_of(services: Services) -> SocialCareIntake:
    intake = services.extras.get(SOCIAL_CARE_KEY)
    if intake is None:
        intake = SocialCareIntake(services.store, sources_of(services))
        services.extras[SOCIAL_CARE_KEY] = intake
    assert isinstance(intake, SocialCareIntake)
    return intake


async def post_hl7v2(request: Request) -> Response:
    """`POST /intake/hl7v2`: the raw message as the body, the ACK as the answer (200)."""
    intake = hl7_intake_of(services_of(request))
    raw = await request.body()
    ack = await asyncio.to_thread(intake.handle, raw)
    return Response(ack, media_type=HL7_MEDIA_TYPE)


async def post_social_care(request: Request) -> Response:
    """`POST /intake/social-care` (multipart, field `file`, optional `source`): 200 with the report."""
    services = services_of(request)
    intake = social_care_intake_of(services)
    async with request.form() as form:
        upload = form.get("file")
        source_id = form.get("source")
        if not isinstance(upload, UploadFile):
            return JSONResponse({"error": "send the extract as multipart/form-data field 'file'"}, status_code=400)
        data = await upload.read()
        filename = upload.filename or "extract.csv"
    source = None
    if isinstance(source_id, str) and source_id:
        source = intake.sources.get(source_id)
        if source is None:
            return JSONResponse({"error": f"unknown source {source_id!r}"}, status_code=400)
    try:
        report = await asyncio.to_thread(intake.ingest, data, filename=filename, source=source)
    except UnreadableExtract as exc:
        return JSONResponse({"error": str(exc), "quarantined": True}, status_code=422)
    except ValueError as exc:  # no single default council
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(report)


def intake_routes() -> list[Route]:
    return [
        Route("/intake/hl7v2", post_hl7v2, methods=["POST"]),
        Route("/intake/social-care", post_social_care, methods=["POST"]),
    ]


def install(app: Any, services: Services, *, host: str = "0.0.0.0") -> None:
    """Add the intake routes and, unless `settings.mllp_port` <= 0, run the MLLP listener."""
    app.router.routes.extend(intake_routes())
    port = services.settings.mllp_port
    if port <= 0:
        return
    holder: dict[str, asyncio.Server] = {}

    async def start() -> None:
        server = await start_mllp_server(host, port, mllp_handler(hl7_intake_of(services)))
        holder["server"] = server
        log.info("intake.mllp.listening", port=server.sockets[0].getsockname()[1])

    async def stop() -> None:
        server = holder.pop("server", None)
        if server is not None:
            server.close()
            await server.wait_closed()

    services.extras.setdefault("startup", []).append(start)
    services.extras.setdefault("shutdown", []).append(stop)
