"""Ward rounds (issue 6, item 6): frequency follows risk; a day's round list from last-round dates."""

from __future__ import annotations

from datetime import date

from gateway.alerts.registry import CaseManagedEntry
from gateway.record.rounds import RoundPolicy, round_frequency, round_list

TODAY = date(2026, 3, 10)


def entry(pid: str, ward: str = "w1", since: str | None = "2026-01-01") -> CaseManagedEntry:
    return CaseManagedEntry(
        patient_id=pid,
        episode_id=f"ep-{pid}",
        episode_type="virtual-ward",
        ward_id=ward,
        ward_name=ward,
        care_manager="Practitioner/cm1",
        teams=("CareTeam/t1",),
        since=since,
    )


def test_frequency_follows_risk_with_configurable_thresholds() -> None:
    assert [round_frequency(p) for p in (12, 10, 9, 5, 4, 0)] == [
        "daily",
        "daily",
        "weekly",
        "weekly",
        "monthly",
        "monthly",
    ]
    assert round_frequency(None) == "daily"  # unscored is not low risk
    policy = RoundPolicy(daily_from=20, weekly_from=2, unscored="weekly")
    assert [round_frequency(p, policy) for p in (12, 1, None)] == ["weekly", "monthly", "weekly"]


def test_round_list_for_a_day() -> None:
    entries = [
        entry("high-seen-yesterday"),
        entry("high-seen-today"),
        entry("mid-seen-8-days-ago"),
        entry("mid-seen-3-days-ago"),
        entry("low-seen-40-days-ago"),
        entry("low-seen-10-days-ago"),
        entry("never-seen", since="2026-03-08"),
        entry("enrols-next-week", since="2026-03-17"),
        entry("other-ward", ward="w2"),
    ]
    risk = {
        "high-seen-yesterday": 14,
        "high-seen-today": 11,
        "mid-seen-8-days-ago": 6,
        "mid-seen-3-days-ago": 7,
        "low-seen-40-days-ago": 1,
        "low-seen-10-days-ago": 2,
        "never-seen": 3,
        "enrols-next-week": 3,
        "other-ward": 30,
    }
    last = {
        "high-seen-yesterday": date(2026, 3, 9),
        "high-seen-today": date(2026, 3, 10),
        "mid-seen-8-days-ago": date(2026, 3, 2),
        "mid-seen-3-days-ago": date(2026, 3, 7),
        "low-seen-40-days-ago": date(2026, 1, 29),
        "low-seen-10-days-ago": date(2026, 2, 28),
    }
    items = round_list(entries, ward_id="w1", today=TODAY, risk_points=risk, last_rounds=last)
    assert [(i.patient_id, i.frequency, i.overdue_days) for i in items] == [
        ("high-seen-yesterday", "daily", 0),
        ("mid-seen-8-days-ago", "weekly", 1),
        ("low-seen-40-days-ago", "monthly", 12),
        ("never-seen", "monthly", 2),
        ("enrols-next-week", "monthly", 0),
    ]
    assert items[0].last_round == date(2026, 3, 9)
    assert items[3].due == date(2026, 3, 8)
