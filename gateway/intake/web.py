"""Wiring the intake to the outside: the MLLP listener, the HTTP intake routes, and app hooks.

Routes: `POST /intake/hl7v2`, `POST /intake/social-care` (200 with the report, or 202 + Location
for a large extract), `POST /intake/community`, `GET /intake/jobs/<id>` and its `report.csv`.

The intakes are synchronous; here they run in worker threads so the event loop keeps reading
other connections while a transaction commits. HL7 v2 messages from every MLLP connection and
from `POST /intake/hl7v2` go through the HL7 intake's one group-commit writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.fhir.services import Services, services_of
from gateway.identity.patient_index import PatientIndex
from gateway.intake.community_intake import CommunityIntake
from gateway.intake.hl7v2_intake import Hl7Intake
from gateway.intake.jobs import DONE, IntakeJobs, JobLimits, report_csv
from gateway.intake.mllp import start_mllp_server
from gateway.intake.social_care_intake import SocialCareIntake
from gateway.intake.sources import SourceRegistry
from gateway.mappings.community import UnreadableRecords
from gateway.mappings.social_care import UnreadableExtract

log = structlog.get_logger(__name__)

HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"
EXTRA_KEY = "hl7_intake"
SOCIAL_CARE_KEY = "social_care_intake"
SOURCES_KEY = "intake_sources"
COMMUNITY_KEY = "community_intake"
JOBS_KEY = "intake_jobs"
JOB_LIMITS_KEY = "intake_job_limits"  # a JobLimits here overrides the settings (tests, deployments)
JOBS_PATH = "/intake/jobs"


def mllp_handler(intake: Hl7Intake) -> Callable[[bytes], Awaitable[bytes]]:
    """An MLLP handler: the ACK is returned only after the message's batch committed."""
    return intake.handle_async


def sources_of(services: Services) -> SourceRegistry:
    """The registered sources (default file until a setting names another; set the extra to override)."""
    sources = services.extras.get(SOURCES_KEY)
    if sources is None:
        sources = SourceRegistry.load(services.settings.sources_file, base_url=services.settings.base_url)
        services.extras[SOURCES_KEY] = sources
    assert isinstance(sources, SourceRegistry)
    return sources


def _index(services: Services) -> PatientIndex:
    """The process's one candidate index, shared with `Patient/$match`."""
    return PatientIndex.shared(services.store, services.extras)


T = TypeVar("T")


def _one_per_process(services: Services, key: str, kind: type[T], build: Callable[[], T]) -> T:
    """The process's one instance of an intake component, built on first use and kept in extras."""
    found = services.extras.get(key)
    if found is None:
        found = services.extras[key] = build()
    assert isinstance(found, kind)
    return found


def hl7_intake_of(services: Services) -> Hl7Intake:
    """The process's HL7 intake (one per process: it holds the patient locks)."""
    return _one_per_process(
        services, EXTRA_KEY, Hl7Intake, lambda: Hl7Intake(services.store, sources_of(services), index=_index(services))
    )


def social_care_intake_of(services: Services) -> SocialCareIntake:
    return _one_per_process(
        services,
        SOCIAL_CARE_KEY,
        SocialCareIntake,
        lambda: SocialCareIntake(services.store, sources_of(services), index=_index(services)),
    )


def community_intake_of(services: Services) -> CommunityIntake:
    return _one_per_process(
        services,
        COMMUNITY_KEY,
        CommunityIntake,
        lambda: CommunityIntake(services.store, sources_of(services), index=_index(services)),
    )


def jobs_of(services: Services) -> IntakeJobs:
    """The process's job runner (one per process: it owns the worker threads)."""
    jobs = services.extras.get(JOBS_KEY)
    if jobs is None:
        jobs = IntakeJobs(services.store, social_care_intake_of(services))
        services.extras[JOBS_KEY] = jobs
    assert isinstance(jobs, IntakeJobs)
    return jobs


def job_limits_of(services: Services) -> JobLimits:
    limits = services.extras.get(JOB_LIMITS_KEY)
    return limits if isinstance(limits, JobLimits) else JobLimits.from_settings(services.settings)


async def post_hl7v2(request: Request) -> Response:
    """`POST /intake/hl7v2`: the raw message as the body, the ACK as the answer (200)."""
    intake = hl7_intake_of(services_of(request))
    raw = await request.body()
    ack = await intake.handle_async(raw)  # the same group-commit writer as the MLLP listener
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
        source = source or intake.default_source()
        limits = job_limits_of(services)
        wants_async = "respond-async" in request.headers.get("prefer", "")
        large = wants_async or limits.too_big_to_read(len(data))
        rows = None
        if not large:
            rows = await asyncio.to_thread(intake.count_rows, data, filename=filename)
            large = limits.is_large(len(data), rows)
        if large:
            job = await asyncio.to_thread(
                jobs_of(services).submit, data, filename=filename, source_id=source.source_id, rows_total=rows
            )
            location = f"{JOBS_PATH}/{job.id}"
            return JSONResponse(job.view(location), status_code=202, headers={"Location": location})
        report = await asyncio.to_thread(intake.ingest, data, filename=filename, source=source)
    except UnreadableExtract as exc:
        return JSONResponse({"error": str(exc), "quarantined": True}, status_code=422)
    except ValueError as exc:  # no single default council
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(report)


async def get_job(request: Request) -> Response:
    """`GET /intake/jobs/<id>`: status, progress and (when done) the report."""
    job_id = request.path_params["job_id"]
    job = await asyncio.to_thread(jobs_of(services_of(request)).get, job_id)
    if job is None:
        return JSONResponse({"error": f"no intake job {job_id}"}, status_code=404)
    return JSONResponse(job.view(f"{JOBS_PATH}/{job.id}"))


async def get_job_report_csv(request: Request) -> Response:
    """`GET /intake/jobs/<id>/report.csv`: the per-row report, once the job is done (409 before)."""
    job_id = request.path_params["job_id"]
    job = await asyncio.to_thread(jobs_of(services_of(request)).get, job_id)
    if job is None:
        return JSONResponse({"error": f"no intake job {job_id}"}, status_code=404)
    if job.status != DONE or job.report is None:
        return JSONResponse({"error": f"job is {job.status}; the report comes when it is done"}, status_code=409)
    headers = {"Content-Disposition": f'attachment; filename="{job.id}-report.csv"'}
    return Response(report_csv(job.report), media_type="text/csv; charset=utf-8", headers=headers)


async def post_community(request: Request) -> Response:
    """`POST /intake/community`: JSON records or a FHIR Bundle as the body (or multipart field
    `file`); `?source=<id>` names the provider. 200 with the per-record report."""
    services = services_of(request)
    intake = community_intake_of(services)
    filename = "records.json"
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return JSONResponse({"error": "send the records as multipart/form-data field 'file'"}, status_code=400)
            data = await upload.read()
            filename = upload.filename or filename
    else:
        data = await request.body()
    if len(data) > services.settings.max_body_bytes:
        return JSONResponse({"error": "the upload is larger than the gateway accepts"}, status_code=413)
    source = None
    source_id = request.query_params.get("source")
    if source_id:
        source = intake.sources.get(source_id)
        if source is None:
            return JSONResponse({"error": f"unknown source {source_id!r}"}, status_code=400)
    try:
        report = await asyncio.to_thread(intake.ingest, data, filename=filename, source=source)
    except UnreadableRecords as exc:
        return JSONResponse({"error": str(exc), "quarantined": True}, status_code=422)
    except ValueError as exc:  # no single default provider
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(report)


def intake_routes() -> list[Route]:
    return [
        Route("/intake/hl7v2", post_hl7v2, methods=["POST"]),
        Route("/intake/social-care", post_social_care, methods=["POST"]),
        Route("/intake/community", post_community, methods=["POST"]),
        Route(JOBS_PATH + "/{job_id}", get_job, methods=["GET"]),
        Route(JOBS_PATH + "/{job_id}/report.csv", get_job_report_csv, methods=["GET"]),
    ]


def install(app: Any, services: Services, *, host: str = "0.0.0.0") -> None:
    """Add the intake routes, resume interrupted jobs on start-up and, unless `settings.mllp_port`
    <= 0, run the MLLP listener."""
    app.router.routes.extend(intake_routes())

    async def resume_jobs() -> None:
        await asyncio.to_thread(jobs_of(services).resume)

    services.extras.setdefault("startup", []).append(resume_jobs)
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
        await asyncio.to_thread(hl7_intake_of(services).close)

    services.extras.setdefault("startup", []).append(start)
    services.extras.setdefault("shutdown", []).append(stop)
