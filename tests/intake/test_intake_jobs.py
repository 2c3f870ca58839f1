"""Large social-care uploads: 202 + Location, a background job with progress, the report as JSON and
CSV, persisted across a restart, and a crashed job resumed without duplicates (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import build_services, create_app
from gateway.fhir.services import Services
from gateway.intake.jobs import IntakeJobs, JobLimits
from gateway.intake.web import JOB_LIMITS_KEY, install, jobs_of, social_care_intake_of
from gateway.settings import Settings
from gateway.store.schema import intake_job

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "social_care"
EXTRACT = (FIXTURES / "cld_2024_q1.csv").read_bytes()
BAD = (FIXTURES / "cld_bad_rows.csv").read_bytes()


def app_for(settings: Settings, services: Services) -> FastAPI:
    app = create_app(settings, services, components=False)
    install(app, services)
    return app


@pytest.fixture
async def http(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    services.extras[JOB_LIMITS_KEY] = JobLimits(max_rows=3)  # the fixture extracts are small
    transport = httpx.ASGITransport(app=app_for(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def version_count(services: Services) -> int:
    with services.store.reader() as uow:
        return uow.history(count=1)[1]


async def poll(http: httpx.AsyncClient, location: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, object] = (await http.get(location)).json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.02)


async def test_a_large_upload_is_a_job_with_progress_and_a_csv_report(
    http: httpx.AsyncClient, services: Services
) -> None:
    response = await http.post("/intake/social-care", files={"file": ("q1.csv", EXTRACT, "text/csv")})
    assert response.status_code == 202
    location = response.headers["location"]
    assert location.startswith("/intake/jobs/")
    assert response.json()["status"] in ("queued", "running", "done")
    job = await poll(http, location)
    assert job["status"] == "done"
    report = job["report"]
    assert isinstance(report, dict)
    total = report["totals"]["rows"]
    assert job["progress"] == {"rows_done": total, "rows_total": total}
    assert report["totals"]["rejected"] == 0
    download = await http.get(f"{location}/report.csv")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert list(rows[0]) == ["row", "status", "reasons", "event_key", "resource_types"]
    assert len(rows) == total
    assert rows[0]["status"] == "accepted" and rows[0]["event_key"] and "Patient" in rows[0]["resource_types"]
    assert (await http.get("/intake/jobs/nope")).status_code == 404


async def test_rejected_rows_reach_the_csv_with_their_reasons(http: httpx.AsyncClient) -> None:
    response = await http.post("/intake/social-care", files={"file": ("bad.csv", BAD, "text/csv")})
    assert response.status_code == 202
    job = await poll(http, response.headers["location"])
    rows = list(csv.DictReader(io.StringIO((await http.get(f"{response.headers['location']}/report.csv")).text)))
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert rejected and all(r["reasons"] for r in rejected)
    assert len(rejected) == job["report"]["totals"]["rejected"]  # type: ignore[index]


async def test_small_uploads_are_answered_at_once(http: httpx.AsyncClient, services: Services) -> None:
    services.extras[JOB_LIMITS_KEY] = JobLimits()  # the default: 5,000 rows
    response = await http.post("/intake/social-care", files={"file": ("q1.csv", EXTRACT, "text/csv")})
    assert response.status_code == 200
    assert response.json()["totals"]["rejected"] == 0


async def test_a_job_interrupted_by_a_crash_is_resumed_and_a_restart_shows_its_report(
    settings: Settings, services: Services
) -> None:
    # The crash: the job row says "running" and half the rows were written before the process died.
    lines = EXTRACT.split(b"\n")
    half = b"\n".join(lines[: len(lines) // 2]) + b"\n"
    social_care_intake_of(services).ingest(half, filename="half.csv")
    now = datetime.now(UTC).replace(tzinfo=None)
    with services.store.writer() as uow:
        uow.conn.execute(
            intake_job.insert().values(
                id="crashed",
                kind="social-care",
                source_id="northshire-council",
                filename="q1.csv",
                status="running",
                rows_done=200,
                rows_total=None,
                raw=EXTRACT,
                created_at=now,
                updated_at=now,
            )
        )
    # The restart: a new process on the same database resumes the job.
    restarted = build_services(settings)
    try:
        jobs = jobs_of(restarted)
        assert jobs.resume() == ["crashed"]
        job = jobs.wait("crashed", timeout=20)
        assert job is not None and job.status == "done"
        after = version_count(restarted)
        # Running it again changes nothing: every write is conditional.
        IntakeJobs(restarted.store, social_care_intake_of(restarted)).run("crashed")
        assert version_count(restarted) == after
        # A further restart still serves the finished report over HTTP.
        transport = httpx.ASGITransport(app=app_for(settings, restarted))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            body = (await http.get("/intake/jobs/crashed")).json()
        assert body["status"] == "done"
        assert body["report"]["totals"]["rejected"] == 0
        assert body["progress"]["rows_done"] == body["report"]["totals"]["rows"]
    finally:
        restarted.store.engine.dispose()
    # No duplicates: as many resources of each type as one clean ingest of the whole file makes.
    clean_settings = settings.model_copy(update={"data_dir": settings.data_dir / "clean", "database_url": None})
    if "postgresql" in str(settings.database_url):
        return  # the clean comparison below needs a second database; SQLite covers it
    clean = build_services(clean_settings)
    try:
        social_care_intake_of(clean).ingest(EXTRACT, filename="q1.csv")
        with services.store.reader() as a, clean.store.reader() as b:
            for rtype in ("Patient", "EpisodeOfCare", "CarePlan", "QuestionnaireResponse", "RelatedPerson"):
                ours = {r.id for r in a.history(rtype, count=5000)[0]}
                theirs = {r.id for r in b.history(rtype, count=5000)[0]}
                assert len(ours) == len(theirs), rtype
    finally:
        clean.store.engine.dispose()
