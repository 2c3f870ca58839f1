"""Decoding (MSH-18 and fallbacks), terminator normalisation, and what is not a message."""

from __future__ import annotations

import pytest

from gateway.mappings.hl7v2 import Hl7ParseError, parse_message

MSH = "MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260601101500||ADT^A01^ADT_A01|C1|P|2.5.1"
PID = "PID|1||K1^^^Z9X^MR||ZOË^Siân||19900101|F"


def given(raw: bytes) -> str:
    pid = parse_message(raw).segments.one("PID")
    assert pid is not None
    return pid.get(5, 1) + "/" + pid.get(5, 2)


def test_declared_utf8():
    raw = f"{MSH}||||||UNICODE UTF-8\r{PID}\r".encode()
    parsed = parse_message(raw)
    assert parsed.header.encoding == "utf-8"
    assert given(raw) == "ZOË/Siân"
    assert parsed.warnings == ()


def test_absent_charset_with_cp1252_bytes_never_crashes():
    raw = f"{MSH}\r{PID}\r".encode("cp1252")
    parsed = parse_message(raw)
    assert parsed.header.encoding == "cp1252"
    assert given(raw) == "ZOË/Siân"


def test_absent_charset_with_utf8_bytes():
    raw = f"{MSH}\r{PID}\r".encode()
    assert parse_message(raw).header.encoding == "utf-8"
    assert given(raw) == "ZOË/Siân"


def test_declared_ascii_but_8bit_bytes_falls_back_with_warning():
    raw = f"{MSH}||||||ASCII\r{PID}\r".encode("cp1252")
    parsed = parse_message(raw)
    assert given(raw) == "ZOË/Siân"
    assert parsed.warnings == ("bytes are not valid ASCII as MSH-18 declares; decoded as cp1252",)


def test_undecodable_bytes_still_parse():
    raw = f"{MSH}||||||UNICODE UTF-8\r".encode() + b"PID|1||K1^^^Z9X^MR||\x81\x8d\xff^X\r"
    parsed = parse_message(raw)
    assert parsed.header.encoding == "latin-1"
    assert parsed.warnings


@pytest.mark.parametrize("terminator", [b"\r", b"\n", b"\r\n"])
def test_segment_terminators(terminator):
    raw = terminator.join([MSH.encode(), b"EVN||20260601", PID.encode()]) + terminator
    parsed = parse_message(raw)
    assert [s.name for s in parsed.segments] == ["MSH", "EVN", "PID"]


def test_lone_lf_inside_cr_message_is_data_not_a_segment():
    raw = f"{MSH}\rNTE|1||line one\nline two\r".encode()
    assert [s.name for s in parse_message(raw).segments] == ["MSH", "NTE"]


def test_mllp_bytes_and_whitespace_are_stripped():
    raw = b"\x0b\n" + MSH.encode() + b"\r\x1c\r"
    assert parse_message(raw).header.control_id == "C1"


def test_repetitions_components_and_escapes():
    raw = f"{MSH}\rPID|1||K1^^^Z9X^MR~9990000018^^^NHS^NH||O\\S\\BRIEN^Ann\r".encode()
    pid = parse_message(raw).segments.one("PID")
    assert pid is not None
    assert [r.c(1) for r in pid.reps(3)] == ["K1", "9990000018"]
    assert pid.get(5, 1) == "O^BRIEN"


def test_header_fields():
    raw = b"MSH|^~\\&|EPIC^1.2.3^ISO|Z9X|CAREGW|VWARD|20260601101500+0100||ADT^A04^ADT_A01|C9|T|2.4|||AL|NE\r"
    header = parse_message(raw).header
    assert header.sending_application == "EPIC^1.2.3^ISO"
    assert header.processing_id == "T"
    assert header.message_time == "20260601101500+0100"
    assert header.enhanced_mode


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "does not start with an MSH"),
        (b"hello world", "does not start with an MSH"),
        (b"PID|1||K1\r", "does not start with an MSH"),
        (b"FHS|^~\\&\rMSH|^~\\&|A\r", "batch"),
        (b"MSHA^~\\&|A|B\r", "separator"),
    ],
)
def test_not_a_message(raw, fragment):
    with pytest.raises(Hl7ParseError) as caught:
        parse_message(raw)
    assert fragment in caught.value.reason
    assert caught.value.ack_code == "AR"
