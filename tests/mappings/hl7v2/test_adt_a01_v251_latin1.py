"""v2.5.1 A01 in ISO 8859-1 (MSH-18 8859/1), admitted inside the spring-forward gap."""

from __future__ import annotations

FIXTURE = "adt_a01_v251_latin1.hl7"


def test_fixture_really_is_latin1(raw):
    data = raw(FIXTURE)
    assert "Siân".encode("latin-1") in data
    assert b"\xc3" not in data  # not UTF-8


def test_names_decode_per_msh18(mapped, valid):
    result = mapped(FIXTURE)
    assert result.header.charset == "8859/1"
    assert result.header.encoding == "latin-1"
    assert result.patient["name"][0]["given"] == ["Siân", "Zoë"]
    assert result.patient["address"][0]["line"] == ["Bryn Glas & Annexe"]  # \T\ unescaped
    valid(result.patient)


def test_gap_time_reads_as_gmt_with_a_warning(mapped, valid):
    result = mapped(FIXTURE)
    assert result.encounter is not None
    # 01:30 never happened on 29 Mar 2026 in London; read with the offset before the change.
    assert result.encounter["period"]["start"] == "2026-03-29T01:30:00+00:00"
    assert result.warnings == [
        "PV1-44: local time 2026-03-29 01:30 does not exist in Europe/London (clocks went forward); "
        "read with the earlier offset +00:00"
    ]
    assert result.provenance["recorded"] == "2026-03-29T02:35:12+01:00"  # after the change: BST
    valid(result.encounter)
