"""Two case-finding runs at once (two gateway processes, or a scheduled run and a clinician's
click) on one PostgreSQL database write one RiskAssessment per person, never two."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.record import worklists
from gateway.record.worklists import RISK_ASSESSMENT_ID_SYSTEM, load_all, run_case_finding
from gateway.store.api import Store

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_two_concurrent_runs_write_one_risk_assessment_per_person(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_store.writer() as uow:
        people = [uow.create({"resourceType": "Patient", "birthDate": f"19{30 + i}-01-01"}).id for i in range(3)]

    # Both runs must have read the stored assessments before either writes: the race of two
    # processes. A run that is made to wait for the other (the fix) gives up waiting after a second.
    both_read = threading.Barrier(2, timeout=1.0)
    read = worklists.risk_assessments_by_patient

    def read_then_meet(stored: Any) -> dict[str, Any]:
        found = read(stored)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait()
        return found

    monkeypatch.setattr(worklists, "risk_assessments_by_patient", read_then_meet)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with pg_store.writer() as uow:
                run_case_finding(uow, now=NOW, threshold=0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    with pg_store.reader() as uow:
        assessments = [s.json() for s in load_all(uow, ["RiskAssessment"])]
    subjects = sorted(
        i["value"] for a in assessments for i in a["identifier"] if i["system"] == RISK_ASSESSMENT_ID_SYSTEM
    )
    assert subjects == sorted(people)
