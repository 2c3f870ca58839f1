"""HL7 TS -> FHIR with Europe/London rules, including the skipped and repeated hours."""

from __future__ import annotations

import pytest

from gateway.mappings.hl7v2.timestamps import parse_ts

LONDON = "Europe/London"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("20260115093000", "2026-01-15T09:30:00+00:00"),  # GMT
        ("20260715093000", "2026-07-15T09:30:00+01:00"),  # BST
        ("202607150930", "2026-07-15T09:30:00+01:00"),  # minutes only
        ("2026071509", "2026-07-15T09:00:00+01:00"),  # hours only
        ("20260715093000.25", "2026-07-15T09:30:00.250+01:00"),
        ("20260715093000-0500", "2026-07-15T09:30:00-05:00"),  # explicit offset wins
        ("20260329003000", "2026-03-29T00:30:00+00:00"),  # before the spring change
        ("20260329023000", "2026-03-29T02:30:00+01:00"),  # after it
        ("20261025003000", "2026-10-25T00:30:00+01:00"),
        ("20261025023000", "2026-10-25T02:30:00+00:00"),
        ("19470312", "1947-03-12"),
        ("194703", "1947-03"),
        ("1947", "1947"),
    ],
)
def test_fhir_datetime(raw, expected):
    value, warning = parse_ts(raw, LONDON, label="X")
    assert value is not None
    assert value.fhir_datetime() == expected
    assert warning is None


def test_spring_gap_uses_the_offset_before_the_change():
    value, warning = parse_ts("20260329013000", LONDON, label="PV1-44")
    assert value is not None and value.moment is not None
    assert value.fhir_instant() == "2026-03-29T01:30:00+00:00"
    assert warning is not None and "does not exist" in warning


def test_autumn_overlap_uses_the_first_occurrence():
    value, warning = parse_ts("20261025013000", LONDON, label="PV1-45")
    assert value is not None
    assert value.fhir_instant() == "2026-10-25T01:30:00+01:00"
    assert warning is not None and "occurs twice" in warning


@pytest.mark.parametrize("raw", ["2026-01-01", "20261301", "20260230", "20260101256000", "abc"])
def test_garbage_is_ignored_with_a_warning(raw):
    value, warning = parse_ts(raw, LONDON, label="PV1-44")
    assert value is None
    assert warning is not None and warning.startswith("PV1-44")


def test_blank_is_silent():
    assert parse_ts("  ", LONDON, label="X") == (None, None)


def test_date_only_has_no_instant():
    value, _ = parse_ts("20260101", LONDON, label="X")
    assert value is not None and value.fhir_instant() is None
