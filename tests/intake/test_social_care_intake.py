"""Social-care extract intake: real SQLite store, the HTTP upload route and the CLI."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.app import build_services, create_app
from gateway.fhir.services import Services
from gateway.intake.cli import register_ingest, register_quarantine
from gateway.intake.receipts import list_quarantine
from gateway.intake.social_care_intake import SocialCareIntake
from gateway.intake.sources import SourceRegistry
from gateway.intake.web import install
from gateway.mappings.social_care import UnreadableExtract
from gateway.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "social_care"
NOW = datetime(2024, 7, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, mllp_port=0, base_url="https://gw.example.org", log_json=False)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    built.store.engine.dispose()


@pytest.fixture
def intake(services: Services) -> SocialCareIntake:
    return SocialCareIntake(services.store, SourceRegistry.load(base_url="https://gw.example.org"), now=lambda: NOW)


def version_count(services: Services) -> int:
    with services.store.reader() as uow:
        return uow.history(count=1)[1]


def current(services: Services, rtype: str) -> list[dict[str, object]]:
    with services.store.reader() as uow:
        rows, _ = uow.history(rtype, count=5000)
        return [s.json() for s in uow.fetch_many((rtype, i) for i in sorted({r.id for r in rows}))]


def test_extract_is_written_linked_and_a_resend_changes_nothing(services: Services, intake: SocialCareIntake) -> None:
    data = (FIXTURES / "cld_2024_q1.csv").read_bytes()
    progress: list[tuple[int, int]] = []
    report = intake.ingest(data, filename="cld_2024_q1.csv", progress=lambda d, t: progress.append((d, t)))
    assert report["totals"]["rejected"] == 0
    assert report["totals"]["accepted"] == report["totals"]["rows"] == len(report["rows"])
    assert progress[-1] == (report["totals"]["rows"], report["totals"]["rows"])
    patients = {p["id"] for p in current(services, "Patient")}
    plans = current(services, "CarePlan")
    assert plans and all(p["subject"]["reference"].split("/")[1] in patients for p in plans)  # type: ignore[index]
    assert current(services, "Provenance")
    written = version_count(services)
    assert intake.ingest(data, filename="again.csv") == report
    assert version_count(services) == written

    # The next quarter repeats q1's events: those change nothing, only new or updated events write.
    q2 = intake.ingest((FIXTURES / "cld_2024_q2.csv").read_bytes(), filename="cld_2024_q2.csv")
    assert q2["totals"]["rejected"] == 0
    assert len({p["id"] for p in current(services, "Patient")}) >= len(patients)
    assert len(current(services, "CarePlan")) >= len(plans)


def test_bad_rows_are_rejected_with_reasons_and_quarantined(services: Services, intake: SocialCareIntake) -> None:
    report = intake.ingest((FIXTURES / "cld_bad_rows.csv").read_bytes(), filename="cld_bad_rows.csv")
    rejected = [r for r in report["rows"] if r["status"] == "rejected"]
    assert rejected and all(r["reasons"] for r in rejected)
    assert any("check digit" in reason for r in rejected for reason in r["reasons"])
    with services.store.reader() as uow:
        entries = list_quarantine(uow.conn)
    assert len(entries) == len(rejected)
    assert {json.loads(e.raw)["row"] for e in entries} == {r["row"] for r in rejected}
    assert all(e.kind == "social-care" and e.reason for e in entries)


def test_unreadable_file_is_quarantined_whole(services: Services, intake: SocialCareIntake) -> None:
    with pytest.raises(UnreadableExtract):
        intake.ingest(b'{"records": 5}', filename="broken.json")
    with services.store.reader() as uow:
        [entry] = list_quarantine(uow.conn)
    assert entry.raw == b'{"records": 5}'


async def test_upload_route_returns_the_report(services: Services) -> None:
    app = create_app(services.settings, services, components=False)
    install(app, services)
    data = (FIXTURES / "cld_records.json").read_bytes()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/intake/social-care", files={"file": ("cld_records.json", data)})
        missing = await client.post("/intake/social-care", data={"x": "1"})
    assert response.status_code == 200
    body = response.json()
    assert body["file"] == "cld_records.json"
    assert body["totals"]["rows"] == len(body["rows"]) > 0
    assert missing.status_code == 400


def test_cli_ingest_and_quarantine_list(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(required=True)
    register_ingest(subparsers)
    register_quarantine(subparsers)
    args = parser.parse_args(["ingest", "social-care", str(FIXTURES / "cld_bad_rows.csv")])
    assert args.func(args, settings) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["totals"]["rejected"] > 0
    assert "[" in err and "rows" in err  # the progress bar went to stderr
    args = parser.parse_args(["quarantine", "list"])
    assert args.func(args, settings) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(lines) == summary["totals"]["rejected"]
    assert all(line["kind"] == "social-care" and line["reason"] for line in lines)
