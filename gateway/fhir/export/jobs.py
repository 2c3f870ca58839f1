"""Export jobs: a durable row per job, run on a thread of the gateway process, resumed after a crash.

The same pattern as the intake's upload jobs (`gateway/intake/jobs.py`): the row is the job's
state, so any process can answer a status poll and a restarted process runs again what a stopped
one left unfinished. A job is claimed with a conditional UPDATE and kept alive by a heartbeat
(`updated_at`), so two processes never run the same job: another process takes over only a job
whose heartbeat is older than `LEASE`. A restarted job starts over from an empty folder, with the
same `transactionTime`, so its output is the same cut of the data.

Jobs and their files belong to the client that asked (`get_for`); they are deleted on request or
once `expires_at` (finish + retention) has passed.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from sqlalchemy import delete, or_, select, update

from gateway.audit.events import MAJOR_FAILURE, SUCCESS, audit_export
from gateway.audit.writer import AuditSink
from gateway.auth.context import AccessContext
from gateway.fhir.export.files import ExportFiles
from gateway.fhir.export.params import ExportParams
from gateway.fhir.export.run import Cancelled, ExportSpec, Output, run_export
from gateway.fhir.repository import Guard, Repository
from gateway.store.api import Store
from gateway.store.ids import new_id
from gateway.store.schema import export_job

log = structlog.get_logger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
LEASE = timedelta(minutes=5)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def access_to_json(access: AccessContext) -> str:
    return orjson.dumps(
        {
            "client_id": access.client_id,
            "organization": access.organization,
            "role": access.role,
            "scopes": sorted(access.scopes),
            "purpose_of_use": access.purpose_of_use,
            "break_glass_reason": access.break_glass_reason,
            "is_system": access.is_system,
            "patient": access.patient,
        }
    ).decode()


def access_from_json(text: str) -> AccessContext:
    data = orjson.loads(text)
    return AccessContext(**{**data, "scopes": frozenset(data["scopes"])})


def _outputs(items: list[Output]) -> list[dict[str, object]]:
    return [{"type": o.type, "name": o.name, "count": o.count} for o in items]


@dataclass(frozen=True)
class ExportJob:
    id: str
    client_id: str
    level: str
    group_id: str | None
    request_url: str
    params: ExportParams
    status: str
    transaction_time: datetime
    types_done: int
    types_total: int
    output: list[Output]
    errors: list[Output]
    error: str | None
    expires_at: datetime | None

    @property
    def progress(self) -> str:
        """The `X-Progress` text (no personal data)."""
        if self.status == QUEUED:
            return "queued"
        return f"{self.types_done} of {self.types_total} resource types exported"


class ExportJobs:
    """The export jobs of one gateway; any process can read any job (they live in the database)."""

    def __init__(
        self,
        store: Store,
        files: ExportFiles,
        *,
        guard: Callable[[], Guard | None] = lambda: None,
        audit: Callable[[], AuditSink | None] = lambda: None,
        retention: timedelta = timedelta(hours=24),
        autostart: bool = True,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.files = files
        self.guard = guard
        self.audit = audit
        self.retention = retention
        self.autostart = autostart
        self.now = now
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # -- the API's side -----------------------------------------------------------------------------

    def submit(
        self,
        access: AccessContext,
        *,
        level: str,
        group_id: str | None,
        params: ExportParams,
        request_url: str,
        transaction_time: datetime,
        request_id: str | None = None,
    ) -> ExportJob:
        """Persist a queued job (and start it unless `autostart` is off); returns it."""
        job_id = uuid.uuid4().hex
        at = self.now()
        with self.store.writer() as uow:
            uow.conn.execute(
                export_job.insert().values(
                    id=job_id,
                    client_id=access.client_id,
                    access=access_to_json(access),
                    level=level,
                    group_id=group_id,
                    request_url=request_url,
                    params=params.to_json(),
                    status=QUEUED,
                    transaction_time=transaction_time,
                    types_done=0,
                    types_total=len(params.types or ()),
                    request_id=(request_id or "")[:64] or None,
                    created_at=at,
                    updated_at=at,
                )
            )
        log.info("export.job.queued", job_id=job_id, client_id=access.client_id, level=level)
        if self.autostart:
            self.start(job_id)
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> ExportJob | None:
        with self.store.reader() as uow:
            row = uow.conn.execute(select(export_job).where(export_job.c.id == job_id)).first()
        if row is None:
            return None
        output = orjson.loads(row.output) if row.output else {"output": [], "error": []}
        return ExportJob(
            id=row.id,
            client_id=row.client_id,
            level=row.level,
            group_id=row.group_id,
            request_url=row.request_url,
            params=ExportParams.from_json(row.params),
            status=row.status,
            transaction_time=row.transaction_time,
            types_done=row.types_done,
            types_total=row.types_total,
            output=[Output(o["type"], o["name"], o["count"]) for o in output["output"]],
            errors=[Output(o["type"], o["name"], o["count"]) for o in output["error"]],
            error=row.error,
            expires_at=row.expires_at,
        )

    def get_for(self, client_id: str, job_id: str) -> ExportJob | None:
        """The job if it exists, has not expired and belongs to `client_id`; None otherwise (alike)."""
        job = self.get(job_id)
        if job is None or job.client_id != client_id:
            return None
        if job.expires_at is not None and job.expires_at <= self.now():
            return None
        return job

    def delete(self, job_id: str) -> None:
        """Cancel (a running job stops at its next batch) and remove the job and its files."""
        with self.store.writer() as uow:
            uow.conn.execute(delete(export_job).where(export_job.c.id == job_id))
        self.files.remove(job_id)
        log.info("export.job.deleted", job_id=job_id)

    def expire(self) -> int:
        """Delete jobs past their retention, and folders no job owns; returns how many jobs went."""
        now = self.now()
        with self.store.writer() as uow:
            ids = list(uow.conn.execute(select(export_job.c.id).where(export_job.c.expires_at <= now)).scalars())
            if ids:
                uow.conn.execute(delete(export_job).where(export_job.c.id.in_(ids)))
            known = set(uow.conn.execute(select(export_job.c.id)).scalars())
        for job_id in ids:
            self.files.remove(job_id)
        for job_id in self.files.job_ids():
            if job_id not in known:
                self.files.remove(job_id)
        if ids:
            log.info("export.jobs.expired", jobs=len(ids))
        return len(ids)

    # -- running ------------------------------------------------------------------------------------

    def start(self, job_id: str) -> None:
        with self._lock:
            running = self._threads.get(job_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(target=self.run, args=(job_id,), name=f"export-{job_id[:8]}", daemon=True)
            self._threads[job_id] = thread
        thread.start()

    def resume(self) -> list[str]:
        """Start every job left queued, or running with a stale heartbeat; returns their ids."""
        stale = self.now() - LEASE
        c = export_job.c
        with self.store.reader() as uow:
            ids = list(
                uow.conn.execute(
                    select(c.id).where(or_(c.status == QUEUED, (c.status == RUNNING) & (c.updated_at < stale)))
                ).scalars()
            )
        for job_id in ids:
            log.info("export.job.resumed", job_id=job_id)
            self.start(job_id)
        return ids

    def wait(self, job_id: str, timeout: float | None = None) -> ExportJob | None:
        """Block until this process's run of the job ends (for the CLI and tests)."""
        with self._lock:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(job_id)

    def _claim(self, job_id: str) -> bool:
        c = export_job.c
        now = self.now()
        with self.store.writer() as uow:
            claimed = uow.conn.execute(
                update(export_job)
                .where(c.id == job_id)
                .where(or_(c.status == QUEUED, (c.status == RUNNING) & (c.updated_at < now - LEASE)))
                .values(status=RUNNING, types_done=0, updated_at=now)
            )
        return claimed.rowcount == 1

    def _set(self, job_id: str, **values: object) -> bool:
        """Update the running job; False when it is gone (deleted) or no longer ours."""
        c = export_job.c
        with self.store.writer() as uow:
            result = uow.conn.execute(
                update(export_job).where(c.id == job_id, c.status == RUNNING).values(updated_at=self.now(), **values)
            )
        return result.rowcount == 1

    def run(self, job_id: str) -> None:
        """Run one job to its end in this thread (queued → running → done or failed)."""
        with self.store.reader() as uow:
            row = uow.conn.execute(select(export_job).where(export_job.c.id == job_id)).first()
        if row is None or not self._claim(job_id):
            return
        access = access_from_json(row.access)
        structlog.contextvars.bind_contextvars(request_id=row.request_id)
        spec = ExportSpec(
            level=row.level,
            group_id=row.group_id,
            params=ExportParams.from_json(row.params),
            transaction_time=row.transaction_time,
            request_url=row.request_url,
        )
        repo = Repository(self.store, access, self.guard())
        try:
            output, errors = run_export(
                repo, job_id, spec, self.files, heartbeat=lambda done: self._set(job_id, types_done=done)
            )
        except Cancelled:
            self.files.remove(job_id)
            log.info("export.job.cancelled", job_id=job_id)
            return
        except Exception as exc:  # the job must end in a state the client can see
            log.exception("export.job.failed", job_id=job_id)
            self.files.remove(job_id)
            finished = self.now()
            failed = self._set(
                job_id,
                status=FAILED,
                error=_failure_text(exc),
                finished_at=finished,
                expires_at=finished + self.retention,
            )
            if failed:
                self._audit(access, row.request_url, row.request_id, MAJOR_FAILURE, "export failed")
            return
        finished = self.now()
        body = orjson.dumps({"output": _outputs(output), "error": _outputs(errors)}).decode()
        if not self._set(job_id, status=DONE, output=body, finished_at=finished, expires_at=finished + self.retention):
            self.files.remove(job_id)  # deleted while finishing
            return
        written = sum(o.count for o in output)
        self._audit(access, row.request_url, row.request_id, SUCCESS, f"{written} resources in {len(output)} files")
        log.info("export.job.done", job_id=job_id, files=len(output), resources=written)

    def _audit(self, access: AccessContext, url: str, request_id: str | None, outcome: str, desc: str) -> None:
        sink = self.audit()
        if sink is None:
            return
        sink.record(
            audit_export(
                event_id=new_id(),
                recorded=datetime.now(UTC),
                ctx=access,
                query=url,
                outcome=outcome,
                outcome_desc=desc,
                request_id=request_id,
            )
        )


def _failure_text(exc: Exception) -> str:
    """What the status URL says of a failure: the FHIR error's own text, else only the error's kind."""
    diagnostics = getattr(exc, "diagnostics", None)
    return str(diagnostics) if isinstance(diagnostics, str) else f"the export failed ({type(exc).__name__})"
