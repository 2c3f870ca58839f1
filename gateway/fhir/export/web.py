"""The HTTP face of Bulk Data export: kick-off, status polling, cancelling and file download.

- kick-off (`$export` at system, `Patient` and `Group/[id]` level; GET, or POST with a
  Parameters body) with `Prefer: respond-async` → 202 and `Content-Location: <status URL>`;
- `GET <status URL>` → 202 with `X-Progress` while the job runs, 200 with the manifest when it
  is done, 500 with an OperationOutcome when it failed;
- `DELETE <status URL>` → 202: the job is cancelled and its files removed;
- `GET <file URL>` → the NDJSON file.

Status and file URLs are bound to the client that kicked the export off: for any other client,
and after expiry, they answer 404 exactly like a job that never existed. Break-glass is refused:
it opens one person's record in an emergency, never a population's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, timedelta
from email.utils import format_datetime

import structlog
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from gateway.audit.writer import AuditSink
from gateway.fhir.access import ConsentGuard
from gateway.fhir.body import operation_parameters
from gateway.fhir.errors import FhirError, forbidden, invalid, issue, not_found, outcome
from gateway.fhir.export.files import ExportFiles
from gateway.fhir.export.jobs import DONE, FAILED, ExportJob, ExportJobs
from gateway.fhir.export.manifest import manifest
from gateway.fhir.export.params import GROUP, NDJSON, parse_export_params
from gateway.fhir.export.run import export_types, group_patients
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.repository import Guard
from gateway.fhir.responses import json_response
from gateway.fhir.services import Services, services_of
from gateway.logging import get_logger
from gateway.store.api import utcnow

log = get_logger("gateway.export")

EXPORTS_KEY = "bulk_exports"
STATUS_PATH = "$export-poll-status"
FILE_PATH = "$export-file"
SWEEP_SECONDS = 60.0
_VALUE_KEYS = ("valueString", "valueInstant", "valueDateTime", "valueCode", "valueUri", "valueBoolean")
_built = threading.Lock()


def exports_of(services: Services) -> ExportJobs:
    """The process's one `ExportJobs`, built on first use (it finds the guard and audit sink then)."""
    with _built:
        jobs = services.extras.get(EXPORTS_KEY)
        if jobs is None:

            def guard() -> Guard | None:
                found: Guard | None = services.extras.get("guard")
                return found

            def audit() -> AuditSink | None:
                found = services.extras.get("guard")
                return found.audit if isinstance(found, ConsentGuard) else None

            settings = services.settings
            jobs = ExportJobs(
                services.store,
                ExportFiles(settings.data_dir / "exports"),
                guard=guard,
                audit=audit,
                retention=timedelta(hours=settings.export_retention_hours),
            )
            services.extras[EXPORTS_KEY] = jobs
    assert isinstance(jobs, ExportJobs)
    return jobs


def status_url(services: Services, job_id: str) -> str:
    return f"{services.fhir_base}/{STATUS_PATH}?_jobId={job_id}"


def file_url(services: Services, job_id: str, name: str) -> str:
    return f"{services.fhir_base}/{FILE_PATH}/{job_id}/{name}"


def _prefer_tokens(request: Request) -> set[str]:
    return {
        part.strip().replace(" ", "").lower()
        for header in request.headers.getlist("prefer")
        for part in header.split(",")
        if part.strip()
    }


async def kick_off(request: Request, level: str, group_id: str | None = None) -> Response:
    """Start an export for the caller. Raises FhirError 400 (parameters, no respond-async),
    403 (no readable type, break-glass) or 404 (Group missing or hidden)."""
    services = services_of(request)
    repo = repository(request)
    prefer = _prefer_tokens(request)
    if "respond-async" not in prefer:
        raise invalid("a Bulk Data export needs the header Prefer: respond-async")
    if repo.access.is_break_glass:
        raise forbidden("break-glass access does not extend to bulk export")
    params = parse_export_params(
        await operation_parameters(
            request, services.settings.max_body_bytes, operation="$export", value_keys=_VALUE_KEYS
        ),
        lenient="handling=lenient" in prefer,
    )
    query = request.url.query
    request_url = services.settings.base_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    jobs = exports_of(services)

    def work() -> ExportJob:
        jobs.expire()
        types = export_types(repo, level, params)
        if level == GROUP:
            assert group_id is not None
            with repo.reader() as uow:
                group_patients(uow, repo, group_id)  # 404 now rather than a failed job later
        return jobs.submit(
            repo.access,
            level=level,
            group_id=group_id,
            params=params.with_types(types),
            request_url=request_url,
            transaction_time=utcnow(),
            request_id=request_id if isinstance(request_id, str) else None,
        )

    job = await in_thread(work)
    issues = list(params.warnings) or [issue("informational", "export accepted", severity="information")]
    return json_response(outcome(issues), 202, {"Content-Location": status_url(services, job.id)})


def _gone() -> FhirError:
    return not_found("the export")  # one text for missing, expired and someone else's


async def _job_of_caller(request: Request, job_id: str) -> tuple[Services, ExportJobs, ExportJob]:
    services = services_of(request)
    access = services.authenticate(request)
    jobs = exports_of(services)
    job = await in_thread(lambda: jobs.get_for(access.client_id, job_id))
    if job is None:
        raise _gone()
    return services, jobs, job


async def status(request: Request) -> Response:
    services, _, job = await _job_of_caller(request, request.query_params.get("_jobId", ""))
    if job.status == FAILED:
        return json_response(outcome([issue("exception", job.error or "the export failed")]), 500)
    if job.status != DONE:
        return Response(status_code=202, headers={"X-Progress": job.progress, "Retry-After": "2"})
    body = manifest(
        transaction_time=job.transaction_time,
        request_url=job.request_url,
        output=job.output,
        errors=job.errors,
        file_url=lambda name: file_url(services, job.id, name),
    )
    headers = {}
    if job.expires_at is not None:
        headers["Expires"] = format_datetime(job.expires_at.replace(tzinfo=UTC), usegmt=True)
    return JSONResponse(body, headers=headers)


async def cancel(request: Request) -> Response:
    _, jobs, job = await _job_of_caller(request, request.query_params.get("_jobId", ""))
    await in_thread(lambda: jobs.delete(job.id))
    return json_response(outcome([issue("informational", "export deleted", severity="information")]), 202)


async def download(request: Request) -> Response:
    job_id, name = request.path_params["job"], request.path_params["name"]
    _, jobs, job = await _job_of_caller(request, job_id)
    if job.status != DONE or name not in {o.name for o in (*job.output, *job.errors)}:
        raise _gone()
    path = jobs.files.path(job.id, name)
    if path is None:
        raise _gone()
    return FileResponse(path, media_type=NDJSON)


def install(services: Services) -> None:
    """Resume unfinished exports on start-up, and sweep expired ones (and stale jobs) every minute."""
    holder: dict[str, asyncio.Task[None]] = {}

    async def maintain() -> None:
        while True:
            jobs = exports_of(services)
            try:
                await asyncio.to_thread(jobs.resume)
                await asyncio.to_thread(jobs.expire)
            except Exception:  # the database may be briefly away: try again next time
                log.exception("export.maintenance_failed")
            await asyncio.sleep(SWEEP_SECONDS)

    async def start() -> None:
        holder["task"] = asyncio.create_task(maintain(), name="export-maintenance")

    async def stop() -> None:
        task = holder.pop("task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    services.extras.setdefault("startup", []).append(start)
    services.extras.setdefault("shutdown", []).append(stop)
