"""Reading CLD extracts: BOM, header quirks, Windows-1252, blank lines, ragged rows, JSON shapes."""

from __future__ import annotations

import pytest

from gateway.mappings.social_care import Rejected, UnreadableExtract, map_row, read_csv, read_json
from gateway.mappings.social_care.columns import canonical_column
from gateway.mappings.source import SourceSystem


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("\ufeffLA_Code", "LA_Code"),
        ("  NHS_NUMBER ", "NHS_Number"),
        ("nhs number", "NHS_Number"),
        ("Planned_Units_Per_Week", "Planned_units_per_week"),
        ("Der Birth Year", "Der_Birth_Year"),
        ("Local_Extra", "Local_Extra"),
    ],
)
def test_header_quirks(typed: str, canonical: str) -> None:
    assert canonical_column(typed) == canonical


def test_csv_rows_numbered_from_one_skipping_blank_lines() -> None:
    data = "\ufeffLA_Code,Gender\r\nE99999999, Female \r\n\r\n,,\r\nE99999999,Male\r\n".encode()
    rows = list(read_csv(data))
    assert [(r.row_number, r.values) for r in rows] == [
        (1, {"LA_Code": "E99999999", "Gender": "Female"}),
        (2, {"LA_Code": "E99999999", "Gender": "Male"}),
    ]


def test_windows_1252_text_is_read() -> None:
    rows = list(read_csv("LA_Code,Unit_Cost\r\nE99999999,£12.50\r\n".encode("cp1252")))
    assert rows[0].values["Unit_Cost"] == "£12.50"


def test_ragged_row_is_rejected_not_guessed(source: SourceSystem) -> None:
    (row,) = read_csv("LA_Code,Gender\r\nE99999999,Female,extra\r\n")
    result = map_row(row, source=source)
    assert isinstance(result, Rejected)
    assert "row has 3 fields but the header has 2" in [str(r) for r in result.reasons]


def test_json_array_or_records_object() -> None:
    as_array = list(read_json('[{"la_code": "E99999999", "Planned_units_per_week": 7, "Date_of_Death": null}]'))
    assert as_array[0].values == {"LA_Code": "E99999999", "Planned_units_per_week": "7", "Date_of_Death": ""}
    assert list(read_json(b'{"records": []}')) == []
    with pytest.raises(UnreadableExtract):
        list(read_json(b'{"rows": []}'))
    with pytest.raises(UnreadableExtract):
        list(read_json(b"not json"))


def test_non_object_json_record_is_rejected(source: SourceSystem) -> None:
    (row,) = read_json("[42]")
    result = map_row(row, source=source)
    assert isinstance(result, Rejected) and str(result.reasons[0]) == "record is not a JSON object"
