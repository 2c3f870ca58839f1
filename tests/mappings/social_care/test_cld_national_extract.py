"""fixtures/social_care/cld_national_extract.csv: birth as Der_Birth_Year + Der_Birth_Month."""

from __future__ import annotations

from collections.abc import Callable

from gateway.mappings.social_care import Accepted, RowResult
from gateway.types import JSON

MapFile = Callable[[str], list[RowResult]]
Pick = Callable[[tuple[JSON, ...], str], JSON]


def test_year_and_month_become_a_partial_birth_date(map_file: MapFile, by_type: Pick) -> None:
    results = map_file("cld_national_extract.csv")
    assert all(isinstance(r, Accepted) for r in results)
    births = [by_type(r.resources, "Patient").get("birthDate") for r in results if isinstance(r, Accepted)]
    assert births[:6] == ["1938-05", "1938-05", "1938-05", "1945-11", "1945-11", "1945-11"]
    assert births[6] == "1940-02"
    assert births[7] == "1940"  # birth month unknown: year only


def test_same_events_as_the_council_extract(map_file: MapFile) -> None:
    national = map_file("cld_national_extract.csv")
    council = map_file("cld_2024_q1.csv")
    council_keys = [r.event_key for r in council if isinstance(r, Accepted)]
    expected = council_keys[:6] + council_keys[20:22]
    assert [r.event_key for r in national if isinstance(r, Accepted)] == expected
