"""FHIR partial dates and Periods as exact intervals (the basis of every period check)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.consent.fhirtime import FhirTimeError, covers, interval_of


def test_partial_dates_cover_their_whole_precision() -> None:
    assert interval_of("2024") == (datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    assert interval_of("2024-02") == (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    assert interval_of("2024-02-29")[1] == datetime(2024, 3, 1, tzinfo=UTC)


def test_datetime_with_offset_is_normalised() -> None:
    start, _ = interval_of("2024-06-01T10:00:00+01:00")
    assert start == datetime(2024, 6, 1, 9, 0, tzinfo=UTC)


def test_period_end_date_includes_that_day() -> None:
    period = {"start": "2024-01-01", "end": "2024-12-31"}
    assert covers(period, datetime(2024, 12, 31, 23, 59, tzinfo=UTC))
    assert not covers(period, datetime(2025, 1, 1, tzinfo=UTC))
    assert not covers(period, datetime(2023, 12, 31, 23, 59, tzinfo=UTC))


def test_open_ended_periods() -> None:
    assert covers({"start": "2020-01-01"}, datetime(2099, 1, 1, tzinfo=UTC))
    assert covers(None, datetime(2000, 1, 1, tzinfo=UTC))


def test_malformed_value_raises() -> None:
    with pytest.raises(FhirTimeError):
        interval_of("yesterday")
