"""kill -9 of `care-gateway ingest social-care` part-way through a 3,000-row extract, then the same
ingest again: the store ends exactly as after one clean run (no duplicate people, episodes, plans …)
and the re-run's report counts every row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from gateway.identity.nhs_number import with_check_digit
from gateway.paths import FIXTURES_DIR
from gateway.store.schema import resource, resource_version
from tests.durability.conftest import ROOT, Deployment

COPIES = 100  # of the 30-row Q1 return: 3,000 rows, 1,000 people
KILL_AFTER_ROWS = 1000
PROGRESS = re.compile(rb"(\d+)/(\d+) rows")


def make_extract(path: Path, copies: int = COPIES) -> int:
    """The Q1 fixture repeated with distinct council ids and valid 999-range NHS numbers per copy.

    Copies share no person, so a clean run of `copies` copies stores exactly `copies` times what a
    clean run of one copy stores: the baseline costs one 30-row ingest, not a second 3,000-row one.
    """
    with (FIXTURES_DIR / "social_care" / "cld_2024_q1.csv").open(newline="", encoding="utf-8-sig") as f:
        template = list(csv.DictReader(f))
    people = sorted({r["LA_Person_Unique_Identifier"] for r in template})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(template[0]), lineterminator="\n")
    writer.writeheader()
    for copy in range(copies):
        ids = {p: f"{p}-{copy:03d}" for p in people}
        nhs = {
            p: next(n for d in range(10) if (n := with_check_digit(f"9997{copy:03d}{i:01d}{d}")))
            for i, p in enumerate(people)
        }
        for row in template:
            person = row["LA_Person_Unique_Identifier"]
            cared_for = row["Cared_For_Person_Unique_Identifier"]
            writer.writerow(
                row
                | {
                    "LA_Person_Unique_Identifier": ids[person],
                    "NHS_Number": nhs[person],
                    "Cared_For_Person_Unique_Identifier": ids[cared_for] if cared_for else "",
                }
            )
    path.write_text(out.getvalue(), encoding="utf-8")
    return copies * len(template)


def ingest_command(path: Path) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "ingest", "social-care", str(path)]


def env_for(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return env | {
        "GATEWAY_DATA_DIR": str(data_dir),
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_LOG_LEVEL": "WARNING",
    }


def ingest(path: Path, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(ingest_command(path), cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    report: dict[str, object] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return report


def ingest_and_kill(path: Path, env: dict[str, str], after_rows: int) -> int:
    """Start the ingest, SIGKILL it once its progress bar passes `after_rows`; the rows it had reached."""
    proc = subprocess.Popen(ingest_command(path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reached = 0
    try:
        assert proc.stderr is not None
        timer = threading.Timer(60, proc.kill)  # never hang the suite
        timer.start()
        buffer = b""
        while chunk := os.read(proc.stderr.fileno(), 4096):
            buffer = (buffer + chunk)[-200:]
            found = PROGRESS.findall(buffer)
            if found and int(found[-1][0]) >= after_rows:
                reached = int(found[-1][0])
                os.kill(proc.pid, signal.SIGKILL)
                break
        timer.cancel()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -9, "the ingest finished before it could be killed"
    return reached


def counts(database_url: str) -> tuple[dict[str, int], dict[str, int]]:
    """Live resources and stored versions, by type."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            live = conn.execute(
                select(resource.c.res_type, func.count())
                .where(resource.c.deleted.is_(False))
                .group_by(resource.c.res_type)
            )
            versions = conn.execute(
                select(resource_version.c.res_type, func.count()).group_by(resource_version.c.res_type)
            )
            return {t: int(n) for t, n in live}, {t: int(n) for t, n in versions}
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("deployment", ["sqlite"], indirect=True)  # PostgreSQL: ~60 s here, too slow for the suite
def test_kill_9_mid_ingest_then_rerun_equals_one_clean_run(deployment: Deployment, tmp_path: Path) -> None:
    extract = tmp_path / "cld_durability.csv"
    rows = make_extract(extract)

    one_copy = tmp_path / "cld_one_copy.csv"
    make_extract(one_copy, copies=1)
    clean_url = f"sqlite:///{tmp_path / 'clean.db'}"
    one = ingest(one_copy, env_for(clean_url, tmp_path / "clean-data"))["totals"]
    assert isinstance(one, dict) and one["rejected"] == 0
    clean_totals = {key: n * COPIES for key, n in one.items()}
    assert clean_totals["rows"] == clean_totals["accepted"] == rows
    one_live, one_versions = counts(clean_url)
    clean_live = {t: n * COPIES for t, n in one_live.items()}
    clean_versions = {t: n * COPIES for t, n in one_versions.items()}
    assert clean_live["Patient"] == COPIES * 10  # 8 service users and 2 carers per copy

    env = env_for(deployment.database_url, deployment.tmp / "data")
    reached = ingest_and_kill(extract, env, KILL_AFTER_ROWS)
    assert KILL_AFTER_ROWS <= reached < rows
    partial_live, _ = counts(deployment.database_url)
    assert 0 < partial_live["Patient"] < COPIES * 10, "the kill did not land part-way"

    report = ingest(extract, env)
    assert report["totals"] == clean_totals
    assert counts(deployment.database_url) == (clean_live, clean_versions)

    again = ingest(extract, env)  # the same file a third time: answered from its receipt, nothing written
    assert again["totals"] == clean_totals
    assert counts(deployment.database_url) == (clean_live, clean_versions)
