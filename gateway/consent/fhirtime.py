"""FHIR date/dateTime/Period values as half-open UTC intervals, so period checks are exact.

A partial date covers its whole precision: `2024` is all of 2024, `2024-05-01` all of that day,
and a Period `end` of `2024-12-31` includes that day. Values without a zone (date-only values
and the rare zone-less dateTime) are read as UTC: the policy must not depend on the host clock.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any

Interval = tuple[datetime, datetime]  # [start, end)

_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)


class FhirTimeError(ValueError):
    """A date/dateTime string that is not FHIR-shaped."""


def interval_of(value: str) -> Interval:
    """The instants a FHIR date or dateTime string covers. Raises FhirTimeError when malformed."""
    text = value.strip()
    try:
        if len(text) == 4:
            year = int(text)
            return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        if len(text) == 7:
            year, month = int(text[:4]), int(text[5:7])
            days = calendar.monthrange(year, month)[1]
            start = datetime(year, month, 1, tzinfo=UTC)
            return start, start + timedelta(days=days)
        if len(text) == 10:
            start = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return start, start + timedelta(days=1)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FhirTimeError(f"not a FHIR date/dateTime: {value!r}") from exc
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    # Precision is one second unless fractional seconds were given.
    return instant, instant + (timedelta(microseconds=1) if instant.microsecond else timedelta(seconds=1))


def period_interval(period: dict[str, Any] | None) -> Interval:
    """A Period as an interval; a missing bound is open-ended."""
    if not period:
        return _MIN, _MAX
    start = interval_of(period["start"])[0] if period.get("start") else _MIN
    end = interval_of(period["end"])[1] if period.get("end") else _MAX
    return start, end


def covers(period: dict[str, Any] | None, now: datetime) -> bool:
    start, end = period_interval(period)
    return start <= now < end


def overlaps(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def boundaries(period: dict[str, Any] | None) -> tuple[datetime, ...]:
    """The instants at which a Period starts or stops covering (for cache expiry)."""
    start, end = period_interval(period)
    return tuple(t for t in (start, end) if t not in (_MIN, _MAX))
