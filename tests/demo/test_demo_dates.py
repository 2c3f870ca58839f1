"""The demo's dates follow the day it is loaded (fixtures/demo/README.md): the story told next year,
or in five years, is the story told today."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import orjson

from gateway.app import build_services
from gateway.demo.dates import REFERENCE_DAY, shift_csv, shift_hl7, shift_json
from gateway.demo.load import ensure_demo_loaded
from gateway.record.worklists import load_reviews_due, run_case_finding
from gateway.settings import Settings
from gateway.web.case_management import CaseManagementConfig


def test_dates_move_by_whole_days_in_every_format() -> None:
    shifted = shift_json(
        {
            "birthDate": "1938-12-10",
            "period": {"start": "2026-08-27T10:00:00+01:00", "end": "2026-11-30T23:50:00Z"},
            "code": "2026",  # not a date to the day: left alone
            "identifier": [{"value": "9990000018"}],
        },
        days=10,
    )
    assert shifted == {
        "birthDate": "1938-12-20",
        "period": {"start": "2026-09-06T10:00:00+01:00", "end": "2026-12-10T23:50:00Z"},
        "code": "2026",
        "identifier": [{"value": "9990000018"}],
    }
    csv = b"LA_Code,Date_of_Birth,Event_Start_Date,Event_End_Date,Unit_Cost\nE09,21/07/1944,2026-12-25,,23.50\n"
    assert (
        shift_csv(csv, days=7)
        == b"LA_Code,Date_of_Birth,Event_Start_Date,Event_End_Date,Unit_Cost\nE09,28/07/1944,2027-01-01,,23.50\n"
    )
    message = (
        b"MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|202608101200||ADT^A01^ADT_A01|RXX1|P|2.4\r"
        b"EVN|A01|202608101200\rPID|1||RXX100001^^^Z9X^MR~9990000018^^^NHS^NH||LOVELACE^Ada||19381210|F\r"
        b"PV1|1|I|WARD7" + b"|" * 41 + b"202608101130|202608200930"
    )
    moved = shift_hl7(message, days=-10).split(b"\r")
    assert moved[0].split(b"|")[6] == b"202607311200"
    assert moved[1] == b"EVN|A01|202607311200"
    assert moved[2].split(b"|")[7] == b"19381130"
    assert moved[3].split(b"|")[44:46] == [b"202607311130", b"202608100930"]


def _story(tmp_path: Path, today: date) -> dict[str, Any]:
    """What the demo tells on `today` when loaded that day: the case-finding worklist and the reviews due."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        mllp_port=0,
        ward_list_push_enabled=False,
        log_level="WARNING",
    )
    services = build_services(settings)
    try:
        ensure_demo_loaded(services, today=today)
        now = datetime.combine(today, time(12), tzinfo=UTC)
        with services.store.writer() as uow:
            found = run_case_finding(uow, now=now, threshold=CaseManagementConfig().threshold)
            reviews = load_reviews_due(uow, today=today)
        return {
            "worklist": [(i.patient_id, i.points, i.reasons) for i in found.worklist],
            "scores": sorted((s.patient_id, s.points) for s in found.scores),
            "reviews": [(r.care_plan_id, r.overdue_days) for r in reviews],
        }
    finally:
        services.store.engine.dispose()


def test_the_story_is_the_same_years_after_the_fixtures_were_written(tmp_path: Path) -> None:
    as_written = _story(tmp_path / "as-written", REFERENCE_DAY)
    years_ahead = _story(tmp_path / "years-ahead", date(2031, 3, 15))
    assert years_ahead == as_written
    assert [p for p, _, _ in as_written["worklist"]] == ["p-dev"]  # the story: Dev, not yet case-managed
    assert len(as_written["reviews"]) == 3  # the three joint care plans' reviews are due today
    assert {days for _, days in as_written["reviews"]} == {0}


def test_the_fixtures_have_dates_to_the_day_only() -> None:
    """Every date in fixtures/demo is written to the day, so moving it by days is defined."""
    from gateway.demo.load import DEMO_DIR

    partial = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif (
            isinstance(node, str)
            and len(node) in (4, 7)
            and node[:2] in ("19", "20")
            and node.replace("-", "").isdigit()
        ):
            partial.append(node)

    for path in [*DEMO_DIR.glob("*.json"), *(DEMO_DIR / "sources").glob("*.json")]:
        walk(orjson.loads(path.read_bytes()))
    assert partial == []
