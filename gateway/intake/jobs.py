"""Background jobs for large uploads: persisted, polled, resumed after a crash.

A large social-care extract is answered `202 Accepted` at once and ingested in a worker thread.
The job row holds the upload's raw bytes, its progress and, when done, its report, so the API can
show it after a restart; a job left queued or running by a crash is run again on start-up, which
is safe because the intake's writes are conditional (a row already written changes nothing).
"""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import select, update

from gateway.intake.social_care_intake import SocialCareIntake
from gateway.mappings.social_care import UnreadableExtract
from gateway.store.api import Store, instant
from gateway.store.schema import intake_job
from gateway.types import JSON

log = structlog.get_logger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
CSV_COLUMNS = ("row", "status", "reasons", "event_key", "resource_types")


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class JobLimits:
    """An upload above either limit is run as a job (`max_bytes` None: rows decide alone)."""

    max_rows: int = 5000
    max_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> JobLimits:
        """`intake_async_rows` / `intake_async_bytes` when the settings carry them, else the defaults."""
        return cls(
            max_rows=int(getattr(settings, "intake_async_rows", cls.max_rows)),
            max_bytes=getattr(settings, "intake_async_bytes", cls.max_bytes),
        )

    def too_big_to_read(self, size: int) -> bool:
        return self.max_bytes is not None and size > self.max_bytes

    def is_large(self, size: int, rows: int) -> bool:
        return self.too_big_to_read(size) or rows > self.max_rows


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    source_id: str
    filename: str
    status: str
    rows_done: int
    rows_total: int | None
    report: JSON | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    def view(self, location: str) -> JSON:
        """What `GET /intake/jobs/<id>` answers."""
        out: JSON = {
            "id": self.id,
            "kind": self.kind,
            "source_id": self.source_id,
            "file": self.filename,
            "status": self.status,
            "progress": {"rows_done": self.rows_done, "rows_total": self.rows_total},
            "created": instant(self.created_at),
            "finished": instant(self.finished_at) if self.finished_at else None,
        }
        if self.status == DONE:
            out["report"] = self.report
            out["report_csv"] = f"{location}/report.csv"
        if self.status == FAILED:
            out["error"] = self.error
        return out


def report_csv(report: JSON) -> str:
    """The per-row report as CSV: row, status, reasons (`; `-joined), event_key, resource_types."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.get("rows") or []:
        writer.writerow(
            [
                row.get("row"),
                row.get("status"),
                "; ".join(row.get("reasons") or []),
                row.get("event_key") or "",
                " ".join(row.get("resource_types") or []),
            ]
        )
    return buffer.getvalue()


class IntakeJobs:
    """The jobs of one process; any process can read any job (they live in the database)."""

    def __init__(self, store: Store, intake: SocialCareIntake, *, now: Callable[[], datetime] = _utc_now) -> None:
        self.store = store
        self.intake = intake
        self.now = now
        self._threads: dict[str, threading.Thread] = {}
        self._guard = threading.Lock()

    def submit(self, data: bytes, *, filename: str, source_id: str, rows_total: int | None = None) -> Job:
        """Persist the upload as a queued job and start it; returns the job as queued."""
        job_id = uuid.uuid4().hex
        at = self.now()
        with self.store.writer() as uow:
            uow.conn.execute(
                intake_job.insert().values(
                    id=job_id,
                    kind="social-care",
                    source_id=source_id,
                    filename=filename[:255],
                    status=QUEUED,
                    rows_done=0,
                    rows_total=rows_total,
                    raw=data,
                    created_at=at,
                    updated_at=at,
                )
            )
        log.info("intake.job.queued", job_id=job_id, source_id=source_id, bytes=len(data))
        self._start(job_id)
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        c = intake_job.c
        columns = [c.id, c.kind, c.source_id, c.filename, c.status, c.rows_done, c.rows_total]
        columns += [c.report, c.error, c.created_at, c.finished_at]
        with self.store.reader() as uow:
            row = uow.conn.execute(select(*columns).where(c.id == job_id)).first()
        if row is None:
            return None
        return Job(
            id=row.id,
            kind=row.kind,
            source_id=row.source_id,
            filename=row.filename,
            status=row.status,
            rows_done=row.rows_done,
            rows_total=row.rows_total,
            report=orjson.loads(row.report) if row.report is not None else None,
            error=row.error,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )

    def resume(self) -> list[str]:
        """Start again every job a stopped process left queued or running; returns their ids."""
        with self.store.reader() as uow:
            ids = [
                r.id
                for r in uow.conn.execute(select(intake_job.c.id).where(intake_job.c.status.in_([QUEUED, RUNNING])))
            ]
        for job_id in ids:
            log.info("intake.job.resumed", job_id=job_id)
            self._start(job_id)
        return ids

    def wait(self, job_id: str, timeout: float | None = None) -> Job | None:
        """Block until this process's run of the job ends (for the CLI and tests)."""
        with self._guard:
            thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)
        return self.get(job_id)

    # -- running -----------------------------------------------------------------------------------

    def _start(self, job_id: str) -> None:
        with self._guard:
            running = self._threads.get(job_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(target=self.run, args=(job_id,), name=f"intake-job-{job_id[:8]}", daemon=True)
            self._threads[job_id] = thread
        thread.start()

    def _set(self, job_id: str, **values: object) -> None:
        with self.store.writer() as uow:
            uow.conn.execute(
                update(intake_job).where(intake_job.c.id == job_id).values(updated_at=self.now(), **values)
            )

    def run(self, job_id: str) -> None:
        """Run one job to its end in this thread (queued/running → done or failed)."""
        c = intake_job.c
        with self.store.reader() as uow:
            row = uow.conn.execute(select(c.raw, c.filename, c.source_id).where(c.id == job_id)).first()
        if row is None:
            return
        self._set(job_id, status=RUNNING)
        try:
            source = self.intake.sources.get(row.source_id)
            if source is None:
                raise ValueError(f"source {row.source_id!r} is no longer registered")
            report = self.intake.ingest(
                bytes(row.raw),
                filename=row.filename,
                source=source,
                progress=lambda done, total: self._set(job_id, rows_done=done, rows_total=total),
            )
        except UnreadableExtract as exc:
            self._set(job_id, status=FAILED, error=f"unreadable, quarantined: {exc}", finished_at=self.now())
            return
        except Exception as exc:  # the job must end in a state a person can see
            log.exception("intake.job.failed", job_id=job_id)
            self._set(job_id, status=FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=self.now())
            return
        totals = report["totals"]
        self._set(
            job_id,
            status=DONE,
            rows_done=totals["rows"],
            rows_total=totals["rows"],
            report=orjson.dumps(report),
            finished_at=self.now(),
        )
        log.info("intake.job.done", job_id=job_id, **totals)
