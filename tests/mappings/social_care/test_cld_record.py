"""Row checks that no fixture file covers: date formats, birth fields, numbers."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.mappings.social_care import SourceRow, parse_row
from gateway.mappings.social_care.record import parse_date

BASE = {
    "LA_Code": "E99999999",
    "LA_Person_Unique_Identifier": "SC9001",
    "Client_Type": "Service User",
    "Event_Type": "Request",
    "Event_Start_Date": "2024-05-01",
}


@pytest.mark.parametrize("typed", ["2024-05-01", "01/05/2024", "2024-05-01 00:00:00.000", "2024-05-01T00:00:00"])
def test_date_formats(typed: str) -> None:
    assert parse_date(typed) == date(2024, 5, 1)


def test_date_of_birth_wins_over_disagreeing_birth_year_with_a_warning() -> None:
    row = SourceRow(1, {**BASE, "Date_of_Birth": "1950-03-04", "Der_Birth_Year": "1951", "Der_Birth_Month": "3"})
    record, reasons, warnings = parse_row(row)
    assert record is not None and not reasons
    assert record.birth_date == "1950-03-04"
    assert warnings == ["Date_of_Birth: disagrees with Der_Birth_Year/Month; Date_of_Birth used"]


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ({"Der_Birth_Year": "51"}, "Der_Birth_Year: not a four-digit year"),
        ({"Der_Birth_Year": "1951", "Der_Birth_Month": "13"}, "Der_Birth_Month: not a month number 1-12"),
        ({"Der_Birth_Month": "4"}, "Der_Birth_Year: blank while Der_Birth_Month is given"),
        ({"Planned_units_per_week": "-2"}, "Planned_units_per_week: '-2' is not a non-negative number"),
        ({"Gender": "F"}, "Gender: 'F' is not a value of the CLD defined list"),
    ],
)
def test_field_faults(cells: dict[str, str], reason: str) -> None:
    record, reasons, _ = parse_row(SourceRow(1, {**BASE, **cells}))
    assert record is None and [str(r) for r in reasons] == [reason]


def test_every_fault_is_reported_at_once() -> None:
    row = SourceRow(1, {**BASE, "LA_Code": "", "Event_Start_Date": "soon", "NHS_Number": "123"})
    _, reasons, _ = parse_row(row)
    assert {r.column for r in reasons} == {"LA_Code", "Event_Start_Date", "NHS_Number"}


def test_outcome_alone_closes_an_event() -> None:
    record, _, _ = parse_row(SourceRow(1, {**BASE, "Event_Outcome": "NFA - Deceased"}))
    assert record is not None and record.event_end is None and record.closed
    record, _, _ = parse_row(SourceRow(1, {**BASE, "Event_Outcome": "Progress to Assessment"}))
    assert record is not None and not record.closed
