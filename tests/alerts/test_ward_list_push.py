"""Nightly ward-list push (issue 5, item 6): schedule across clock changes, drop files and stored Lists."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA
from gateway.alerts.subscriptions.topics import load_topics
from gateway.alerts.ward_list_push import (
    EXT_WARD_LIST_RECIPIENT,
    next_run,
    push_forever,
    run_push,
    subscription_receivers,
)
from gateway.alerts.ward_list_service import WardListConfig
from gateway.codes import TOPIC_WARD_LIST
from gateway.fhir.services import Services
from gateway.store.api import SearchQuery
from tests.alerts.test_ward_list_service import NHS, seed_resources, seed_wards

LONDON = ZoneInfo("Europe/London")
EIGHT_PM = time(20, 0)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_run_is_today_before_the_time_and_tomorrow_from_it() -> None:
    assert next_run(utc(2026, 2, 1, 19, 59), EIGHT_PM, LONDON) == datetime(2026, 2, 1, 20, 0, tzinfo=LONDON)
    assert next_run(utc(2026, 2, 1, 20, 0), EIGHT_PM, LONDON) == datetime(2026, 2, 2, 20, 0, tzinfo=LONDON)
    summer = next_run(utc(2026, 7, 1, 12, 0), EIGHT_PM, LONDON)
    assert summer.astimezone(UTC) == utc(2026, 7, 1, 19, 0)  # 20:00 BST


def test_next_run_keeps_local_time_across_the_clock_changes() -> None:
    spring = next_run(utc(2026, 3, 28, 20, 0, 1), EIGHT_PM, LONDON)  # clocks go forward 29 March
    assert spring.astimezone(UTC) == utc(2026, 3, 29, 19, 0)  # a 23-hour night, still 20:00 local
    autumn = next_run(utc(2026, 10, 24, 19, 0, 1), EIGHT_PM, LONDON)  # clocks go back 25 October
    assert autumn.astimezone(UTC) == utc(2026, 10, 25, 20, 0)  # a 25-hour night


def test_skipped_and_repeated_wall_times() -> None:
    at = time(1, 30)
    skipped = next_run(utc(2026, 3, 29, 0, 0), at, LONDON)  # 01:30 does not exist that night
    assert skipped.astimezone(UTC) == utc(2026, 3, 29, 1, 30)  # = 02:30 BST: runs, an hour late
    first = next_run(utc(2026, 10, 24, 23, 0), at, LONDON)  # 01:30 happens twice
    assert first.astimezone(UTC) == utc(2026, 10, 25, 0, 30)  # the first (BST) one
    after = next_run(first + timedelta(microseconds=1), at, LONDON)
    assert after.astimezone(UTC) == utc(2026, 10, 26, 1, 30)  # not again an hour later


def test_next_run_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError):
        next_run(datetime(2026, 1, 1), EIGHT_PM, LONDON)


def _subscription(sid: str, *filters: str, status: str = "requested") -> dict[str, object]:
    return {
        "resourceType": "Subscription",
        "id": sid,
        "status": status,
        "reason": "night-shift ward list",
        "criteria": TOPIC_WARD_LIST,
        "_criteria": {"extension": [{"url": EXT_FILTER_CRITERIA, "valueString": f} for f in filters]},
        "channel": {"type": "rest-hook", "endpoint": "https://acute.example/hook", "payload": "application/fhir+json"},
    }


def test_subscription_receivers_from_filters() -> None:
    topic = load_topics()[TOPIC_WARD_LIST]
    subs = [
        _subscription("a", "List?organization=Organization/acute&ward=Location/north"),
        _subscription("b", "List?organization=Organization/ooh"),
        _subscription("c", "List?organization=Organization/gone", status="off"),
        _subscription("d", "List?ward=north"),  # names no organisation
        _subscription("e", "List?colour=red"),  # malformed: skipped
    ]
    assert subscription_receivers(subs, topic) == {
        "Organization/acute": frozenset({"north"}),
        "Organization/ooh": None,
    }


async def test_push_writes_drop_files_and_lists_idempotently(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    await seed_wards(client)
    services.store.update(_subscription("acute-sub", "List?organization=Organization/acute&ward=north"))
    config = WardListConfig(receivers=("Organization/ooh",), drop_dir=tmp_path / "drop")
    now = utc(2026, 3, 2, 20, 0)

    first = run_push(services, now=now, config=config)
    assert sorted(p.relative_to(tmp_path / "drop").as_posix() for p in first.files) == [
        "acute/north-2026-03-02.csv",
        "ooh/north-2026-03-02.csv",
        "ooh/south-2026-03-02.csv",
    ]
    north = (tmp_path / "drop" / "ooh" / "north-2026-03-02.csv").read_bytes().decode()
    assert north.count("\r\n") == 3 and NHS["p1"] in north and NHS["p3"] not in north
    assert not list((tmp_path / "drop").rglob("*.tmp"))

    stored = services.store.read("List", "ward-list-north-acute-20260302").json()
    assert [e["item"]["reference"] for e in stored["entry"]] == ["Patient/p2", "Patient/p1"]
    recipients = [e["valueReference"]["reference"] for e in stored["extension"] if e["url"] == EXT_WARD_LIST_RECIPIENT]
    assert recipients == ["Organization/acute"]

    second = run_push(services, now=now + timedelta(minutes=5), config=config)
    assert sorted(second.lists) == sorted(first.lists)
    assert second.files == first.files
    assert services.store.search(SearchQuery("List")).total == 3  # replaced, not added
    assert services.store.read("List", "ward-list-north-acute-20260302").version_id == 2


async def test_scheduler_sleeps_until_the_time_then_pushes(services: Services, tmp_path: Path) -> None:
    for res in seed_resources():
        services.store.update(res)
    clock = [utc(2026, 3, 2, 19, 0)]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += timedelta(seconds=seconds)
        if clock[0] > utc(2026, 3, 2, 20, 1):
            raise asyncio.CancelledError

    config = WardListConfig(receivers=("Organization/ooh",), drop_dir=tmp_path / "drop", store_lists=False)
    with pytest.raises(asyncio.CancelledError):
        await push_forever(services, config, clock=lambda: clock[0], sleep=sleep)
    assert sum(slept[:12]) == 3600  # 19:00 -> 20:00 GMT, in steps of at most five minutes
    assert max(slept) == 300
    assert (tmp_path / "drop" / "ooh" / "south-2026-03-02.csv").is_file()  # the run happened, once it was due
