"""ACK building: MSA-1 per mode, MSA-2 echo, MSH swap, ERR shape per version, unparseable input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import hl7
import pytest

from gateway.mappings.hl7v2 import (
    AdtMappingError,
    Hl7ParseError,
    ack_wanted,
    build_ack,
    build_unparseable_ack,
    map_adt,
    parse_message,
)

NOW = datetime(2026, 7, 14, 8, 35, 13, tzinfo=UTC)


def parse_ack(data: bytes, encoding: str = "ascii") -> hl7.Message:
    text = data.decode(encoding)
    assert text.endswith("\r")
    return hl7.parse(text)


def test_enhanced_mode_commit_accept(raw):
    header = parse_message(raw("adt_a04_epic_v24_enhanced.hl7")).header
    ack = parse_ack(build_ack(header, "AA", now=NOW))
    assert str(ack["MSA.F1"]) == "CA"
    assert str(ack["MSA.F2"]) == "EPC20260714093512001"
    # Sender and receiver swap.
    assert [str(ack.segment("MSH")(n)) for n in (3, 4, 5, 6)] == ["CAREGW", "VWARD", "EPIC", "Z9X"]
    assert str(ack.segment("MSH")(9)) == "ACK^A04^ACK"
    assert str(ack["MSH.F12"]) == "2.4"
    assert str(ack["MSH.F7"]) == "20260714083513+0000"
    assert ack_wanted(header, "AA")


def test_original_mode_codes(raw):
    header = parse_message(raw("adt_a01_v23_zsegments.hl7")).header
    assert str(parse_ack(build_ack(header, "AA", now=NOW))["MSA.F1"]) == "AA"
    error = AdtMappingError("PID-3 holds no hospital number", "AE", error_code="101", location="PID^1^3")
    ack = parse_ack(build_ack(header, "AE", now=NOW, error=error))
    assert str(ack["MSA.F1"]) == "AE"
    assert str(ack["MSA.F3"]) == "PID-3 holds no hospital number"
    # v2.3: the error lives in ERR-1 (ELD: segment^sequence^field^code&text&table).
    err = ack.segment("ERR")
    assert str(err(1)) == "PID^1^3^101&Required field missing&HL70357"
    assert str(ack.segment("MSH")(9)) == "ACK^A01"  # no MSH-9.3 before v2.3.1


@pytest.mark.parametrize(("code", "enhanced"), [("AE", "CE"), ("AR", "CR")])
def test_enhanced_mode_error_codes(raw, code, enhanced):
    header = parse_message(raw("adt_a04_epic_v24_enhanced.hl7")).header
    error = AdtMappingError("bad", code)
    assert str(parse_ack(build_ack(header, code, now=NOW, error=error))["MSA.F1"]) == enhanced


def test_v25_error_segment_and_escaping(source):
    msh = "MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260601101500||ADT^A99^ADT_A01|C|7|P|2.5.1"
    raw = msh.replace("C|7", "C\\F\\7").encode() + b"\r"
    with pytest.raises(AdtMappingError) as caught:
        map_adt(raw, source=source)
    header = parse_message(raw).header
    assert header.control_id == "C|7"
    ack = parse_ack(build_ack(header, caught.value.ack_code, now=NOW, error=caught.value))
    assert str(ack["MSA.F1"]) == "AR"
    assert ack["MSA.F2"] == "C|7"  # escaped on the wire, echoed exactly
    err = ack.segment("ERR")
    assert str(err(2)) == "MSH^1^9"
    assert str(err(3)) == "201^Unsupported event code^HL70357"
    assert str(err(4)) == "E"
    assert "A99" in str(err(8))


def test_ack_uses_the_message_charset(raw):
    header = parse_message(raw("adt_a01_v251_latin1.hl7")).header
    data = build_ack(header, "AA", now=NOW)
    ack = parse_ack(data, "latin-1")
    assert str(ack["MSH.F18"]) == "8859/1"
    assert str(ack["MSA.F2"]) == "TC000777001"


def test_ack_is_deterministic(raw):
    header = parse_message(raw("adt_a02_transfer.hl7")).header
    assert build_ack(header, "AA", now=NOW) == build_ack(header, "AA", now=NOW)
    assert str(parse_ack(build_ack(header, "AA", now=NOW))["MSH.F10"]) == "ACKPAS000123402"
    assert str(parse_ack(build_ack(header, "AA", now=NOW, control_id="X1"))["MSH.F10"]) == "X1"


def test_ack_wanted_follows_msh15(raw):
    header = parse_message(raw("adt_a04_epic_v24_enhanced.hl7")).header
    never = parse_message(raw("adt_a04_epic_v24_enhanced.hl7").replace(b"|AL|NE", b"|NE|NE")).header
    errors_only = parse_message(raw("adt_a04_epic_v24_enhanced.hl7").replace(b"|AL|NE", b"|ER|NE")).header
    assert ack_wanted(header, "AA") and ack_wanted(header, "AE")
    assert not ack_wanted(never, "AA")
    assert not ack_wanted(errors_only, "AA") and ack_wanted(errors_only, "AE")
    original = parse_message(raw("adt_a02_transfer.hl7")).header
    assert ack_wanted(original, "AA")


def test_unparseable_with_readable_msh_is_paired():
    raw = b"MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260601101500||ADT^A01^ADT_A01|C55|P|2.4|||AL\r\x00\x01garbage"
    ack = parse_ack(build_unparseable_ack(raw, Hl7ParseError("body unreadable"), now=NOW))
    assert str(ack["MSA.F1"]) == "CR"
    assert str(ack["MSA.F2"]) == "C55"
    assert str(ack.segment("MSH")(5)) == "PAS"


def test_unparseable_garbage_still_gets_a_reject():
    ack = parse_ack(build_unparseable_ack(b"\x00\xffnot hl7", Hl7ParseError("not HL7"), now=NOW))
    assert str(ack["MSA.F1"]) == "AR"
    assert str(ack["MSA.F2"]) == ""
    assert str(ack["MSA.F3"]) == "not HL7"
    assert str(ack.segment("MSH")(3)) == "CARE-GATEWAY"


def test_the_ack_time_is_the_moment_in_its_own_zone_even_for_an_equal_moment_elsewhere(raw) -> None:
    header = parse_message(raw("adt_a04_epic_v24_enhanced.hl7")).header
    utc = datetime(2026, 6, 1, 9, 15, tzinfo=UTC)
    london = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == london
    assert str(parse_ack(build_ack(header, "AA", now=utc))["MSH.F7"]) == "20260601091500+0000"
    assert str(parse_ack(build_ack(header, "AA", now=london))["MSH.F7"]) == "20260601101500+0100"
    assert str(parse_ack(build_ack(header, "AA", now=utc.replace(tzinfo=None)))["MSH.F7"]) == "20260601091500"
