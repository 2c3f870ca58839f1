"""Virtual ward rounds: who must be seen (called, visited, reviewed) today, given their risk.

Each person's round frequency follows their case-finding score: at or above `daily_from` points
daily, at or above `weekly_from` weekly, otherwise monthly (intervals in days, all configurable).
Someone with no score yet is seen at `unscored` frequency, daily by default: not knowing a
person's risk is not evidence that it is low. Pure: registry entries, scores and last-round dates
in, today's list out; the caller records rounds and passes `today` (the ward's local date).

A person is on today's list when their next round is due today or earlier; someone never rounded
is due from their enrolment date (or today, if that is unknown or in the future).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from gateway.alerts.registry import CaseManagedEntry

FREQUENCIES = ("daily", "weekly", "monthly")


@dataclass(frozen=True)
class RoundPolicy:
    daily_from: int = 10
    weekly_from: int = 5
    interval_days: Mapping[str, int] = field(default_factory=lambda: {"daily": 1, "weekly": 7, "monthly": 28})
    unscored: str = "daily"


@dataclass(frozen=True)
class RoundItem:
    patient_id: str
    episode_id: str
    frequency: str
    last_round: date | None
    due: date
    overdue_days: int


def round_frequency(points: int | None, policy: RoundPolicy = RoundPolicy()) -> str:
    if points is None:
        return policy.unscored
    if points >= policy.daily_from:
        return "daily"
    return "weekly" if points >= policy.weekly_from else "monthly"


def next_due(
    last_round: date | None, frequency: str, *, enrolled: date | None, today: date, policy: RoundPolicy
) -> date:
    if last_round is None:
        return enrolled if enrolled is not None and enrolled <= today else today
    return last_round + timedelta(days=policy.interval_days[frequency])


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def round_list(
    entries: Iterable[CaseManagedEntry],
    *,
    ward_id: str,
    today: date,
    risk_points: Mapping[str, int],
    last_rounds: Mapping[str, date],
    policy: RoundPolicy = RoundPolicy(),
) -> list[RoundItem]:
    """Today's round for one ward: most frequent first, then most overdue, then patient id."""
    items: list[RoundItem] = []
    for entry in entries:
        if entry.ward_id != ward_id:
            continue
        frequency = round_frequency(risk_points.get(entry.patient_id), policy)
        last = last_rounds.get(entry.patient_id)
        due = next_due(last, frequency, enrolled=_date(entry.since), today=today, policy=policy)
        if due <= today:
            items.append(RoundItem(entry.patient_id, entry.episode_id, frequency, last, due, (today - due).days))
    return sorted(items, key=lambda i: (FREQUENCIES.index(i.frequency), -i.overdue_days, i.patient_id))
