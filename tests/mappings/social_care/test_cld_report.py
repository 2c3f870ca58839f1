"""The per-row report the intake returns: one entry per row plus totals."""

from __future__ import annotations

from collections.abc import Callable

from gateway.mappings.social_care import Accepted, RowResult, SourceRow, map_row, report_entry, totals
from gateway.mappings.source import SourceSystem

MapFile = Callable[[str], list[RowResult]]


def test_report_entries_and_totals(map_file: MapFile) -> None:
    results = map_file("cld_bad_rows.csv")
    entries = [report_entry(r) for r in results]
    assert isinstance(results[0], Accepted)
    assert entries[0] == {
        "row": 1,
        "status": "accepted",
        "reasons": [],
        "warnings": [],
        "event_key": results[0].event_key,
        "resource_types": ["Patient", "ServiceRequest"],
    }
    assert entries[4]["status"] == "rejected" and entries[4]["resource_types"] == []
    assert totals(results) == {"rows": 10, "accepted": 1, "rejected": 9, "resources": 2}


def test_carer_row_without_cared_for_id_is_accepted_with_a_warning(source: SourceSystem) -> None:
    row = SourceRow(
        1,
        {
            "LA_Code": "E99999999",
            "LA_Person_Unique_Identifier": "C1",
            "Client_Type": "Carer",
            "Event_Type": "Assessment",
            "Event_Start_Date": "2024-05-01",
            "Assessment_Type": "Carer Assessment",
        },
    )
    entry = report_entry(map_row(row, source=source))
    assert entry["status"] == "accepted"
    assert entry["warnings"] == [
        "Cared_For_Person_Unique_Identifier: blank on a carer's row, so no RelatedPerson link is made"
    ]
    assert entry["resource_types"] == ["Patient", "QuestionnaireResponse"]
