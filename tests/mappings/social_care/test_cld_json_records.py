"""fixtures/social_care/cld_records.json: the same events posted as JSON records map as from CSV."""

from __future__ import annotations

from collections.abc import Callable

from gateway.mappings.social_care import Accepted, RowResult

MapFile = Callable[[str], list[RowResult]]


def test_json_records_map_like_the_csv_rows(map_file: MapFile) -> None:
    from_json = map_file("cld_records.json")
    from_csv = [
        r
        for r in map_file("cld_2024_q1.csv")
        if isinstance(r, Accepted) and r.resources[0]["identifier"][0]["value"] in ("SC0001", "SC0101")
    ]
    assert len(from_json) == len(from_csv) == 6
    assert [r.row_number for r in from_json] == [1, 2, 3, 4, 5, 6]  # records numbered in the JSON array
    for j, c in zip(from_json, from_csv, strict=True):
        assert isinstance(j, Accepted)
        assert (j.event_key, j.resources) == (c.event_key, c.resources)
