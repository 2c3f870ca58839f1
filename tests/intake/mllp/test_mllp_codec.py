"""MLLP framing: 0x0B message 0x1C 0x0D, fed in arbitrary pieces."""

from __future__ import annotations

import pytest

from gateway.intake.mllp import FrameTooLarge, MllpDecoder, frame

A = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.4\rPID|1"
B = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|2|P|2.4\rPID|2"


def test_frame_wraps_message():
    assert frame(b"X") == b"\x0bX\x1c\x0d"


def test_two_frames_in_one_read():
    decoder = MllpDecoder()
    assert decoder.feed(frame(A) + frame(B)) == [A, B]
    assert decoder.pending == 0


def test_byte_by_byte_including_split_end_block():
    decoder = MllpDecoder()
    out: list[bytes] = []
    for byte in frame(A) + frame(B):
        out += decoder.feed(bytes([byte]))
    assert out == [A, B]


def test_junk_between_frames_is_skipped_and_counted():
    decoder = MllpDecoder()
    assert decoder.feed(b"\r\n" + frame(A) + b"keepalive\n" + frame(B) + b"\n") == [A, B]
    assert decoder.skipped == len(b"\r\n") + len(b"keepalive\n") + len(b"\n")


def test_abandoned_frame_is_dropped_when_a_new_one_starts():
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bhalf a mess") == []
    assert decoder.pending == len(b"half a mess")
    assert decoder.feed(frame(B)) == [B]
    assert decoder.skipped == len(b"half a mess") + 1


def test_lone_fs_without_cr_is_data():
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0bA\x1cB\x1c\x0d") == [b"A\x1cB"]


def test_oversized_frame_raises_and_resynchronises():
    decoder = MllpDecoder(max_frame=16)
    with pytest.raises(FrameTooLarge) as caught:
        decoder.feed(b"\x0b" + b"x" * 32)
    assert caught.value.limit == 16
    assert decoder.feed(frame(b"small")) == [b"small"]


def test_oversized_frame_after_good_ones_returns_the_good_ones_first():
    decoder = MllpDecoder(max_frame=16)
    assert decoder.feed(frame(b"ok") + b"\x0b" + b"x" * 32) == [b"ok"]
    assert decoder.overflowed is not None
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"")
    assert decoder.overflowed is None
