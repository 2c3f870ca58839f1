"""fixtures/social_care/cld_bad_rows.csv: each faulty row is rejected with a reason naming its column;
the good row goes in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.mappings.social_care import Accepted, Rejected, RowResult, report_entry

MapFile = Callable[[str], list[RowResult]]


@pytest.fixture(scope="module")
def results(map_file: MapFile) -> dict[int, RowResult]:
    return {r.row_number: r for r in map_file("cld_bad_rows.csv")}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (2, "NHS_Number: NHS number fails the Modulus 11 check digit"),
        (3, "NHS_Number: NHS number is a placeholder, not a real number"),
        (4, "Event_Start_Date: not a date (expected YYYY-MM-DD or DD/MM/YYYY)"),
        (5, "Service_Type: 'Long Term Support: Hotel' is not a value of the CLD defined list"),
        (6, "LA_Person_Unique_Identifier: mandatory field is blank"),
        (7, "Service_Type: mandatory on a Service event"),
        (8, "NHS_Number: NHS number is a placeholder, not a real number"),
        (9, "Event_End_Date: is before Event_Start_Date"),
        (10, "Planned_units_per_week: 'lots' is not a number"),
    ],
)
def test_rejected_with_reason(results: dict[int, RowResult], row: int, reason: str) -> None:
    result = results[row]
    assert isinstance(result, Rejected)
    assert [str(r) for r in result.reasons] == [reason]


def test_good_row_goes_in(results: dict[int, RowResult]) -> None:
    assert isinstance(results[1], Accepted)
    assert sum(isinstance(r, Accepted) for r in results.values()) == 1


def test_report_never_echoes_the_nhs_number(results: dict[int, RowResult]) -> None:
    for number in (2, 3, 8):
        entry = report_entry(results[number])
        assert entry["status"] == "rejected" and entry["event_key"] is None
        assert "999" not in str(entry) and "111" not in str(entry)
