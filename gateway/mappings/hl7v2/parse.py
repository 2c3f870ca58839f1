"""Raw HL7 v2 bytes -> decoded, parsed message with a typed header.

The header (`AdtHeader`) is all the intake needs to dedupe and acknowledge a message, so it is
available even when the body later turns out to be unmappable. Parsing itself is python-hl7's;
this module only fixes what real senders get wrong before handing the text over: the charset
(MSH-18), segment terminators (``\\n`` or ``\\r\\n`` instead of ``\\r``) and stray framing bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import hl7
import hl7.util

from gateway.mappings.hl7v2.charset import decode
from gateway.mappings.hl7v2.errors import Hl7ParseError
from gateway.mappings.hl7v2.fields import ListFactory, Segments, from_hl7
from gateway.mappings.hl7v2.plan import parse_er7

__all__ = ["AdtHeader", "ParsedMessage", "parse_message", "version_tuple"]


class _DropFieldValues(logging.Filter):
    """python-hl7 logs raw field text (names, numbers) when an escape sequence is odd.

    Logs must never carry personal data, so those records keep their message but lose the values.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = "python-hl7 could not unescape a field value (value withheld)"
        record.args = ()
        return True


for _module in (hl7.util, hl7.containers):
    logging.getLogger(_module.__file__).addFilter(_DropFieldValues())


@dataclass(frozen=True)
class AdtHeader:
    """What MSH (and, for v2.2-era senders, EVN-1) says about a message.

    HD fields (MSH-3..6) are kept in wire form with the standard separators (``EPIC^1.2.3^ISO``)
    so the ACK can echo them unchanged.
    """

    message_code: str  # MSH-9.1, e.g. ADT
    trigger: str  # MSH-9.2 (or EVN-1 for v2.2 senders that leave it out), e.g. A01
    structure: str | None  # MSH-9.3 as sent, e.g. ADT_A01
    control_id: str  # MSH-10
    sending_application: str  # MSH-3
    sending_facility: str  # MSH-4
    receiving_application: str  # MSH-5
    receiving_facility: str  # MSH-6
    message_time: str  # MSH-7.1, raw HL7 TS
    processing_id: str  # MSH-11.1 (P, T, D)
    version: str  # MSH-12.1, e.g. 2.4
    accept_ack_type: str | None  # MSH-15 (AL, NE, ER, SU)
    application_ack_type: str | None  # MSH-16
    charset: str | None  # MSH-18 as declared
    encoding: str  # the Python codec the message was decoded with

    @property
    def enhanced_mode(self) -> bool:
        """Enhanced acknowledgement mode is asked for by filling MSH-15 or MSH-16."""
        return bool(self.accept_ack_type or self.application_ack_type)


@dataclass(frozen=True)
class ParsedMessage:
    header: AdtHeader
    segments: Segments
    warnings: tuple[str, ...]


def version_tuple(version: str) -> tuple[int, ...]:
    """``2.3.1`` -> (2, 3, 1); anything unreadable -> (0,)."""
    parts: list[int] = []
    for part in version.strip().split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts) or (0,)


def normalise_terminators(raw: bytes) -> bytes:
    """Segments end with CR. Accept LF or CRLF; drop MLLP bytes and blank lines.

    When the message already uses CR, a lone LF is left alone: it may be data inside a field.
    """
    data = raw.strip(b" \t\r\n\x0b\x1c\x00")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\r")
    else:
        data = data.replace(b"\n", b"\r")
    while b"\r\r" in data:
        data = data.replace(b"\r\r", b"\r")
    return data


def parse_message(raw: bytes) -> ParsedMessage:
    """Decode and parse one HL7 v2 message.

    Raises `Hl7ParseError` (ack code AR) when the bytes are not a single readable message.
    """
    data = normalise_terminators(raw)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data[:3] in (b"FHS", b"BHS"):
        raise Hl7ParseError("HL7 batch and file envelopes (FHS/BHS) are not accepted; send one message")
    if data[:3] != b"MSH" or len(data) < 8:
        raise Hl7ParseError("message does not start with an MSH segment")
    if data[3:4].isalnum() or data[3:4] in (b" ", b"\r"):
        raise Hl7ParseError("MSH-1 field separator is not a valid separator character")
    # Latin-1 maps every byte to one character, so a first parse finds MSH-18 whatever the charset.
    provisional = _parse_text(data.decode("latin-1"))
    msh = provisional.one("MSH")
    assert msh is not None
    declared = msh.get(18) or None
    decoded = decode(data, declared)
    segments = provisional if data.isascii() else _parse_text(decoded.text)
    warnings = [decoded.warning] if decoded.warning else []
    header = _header(segments, declared, decoded.encoding, warnings)
    return ParsedMessage(header, segments, tuple(warnings))


def _parse_text(text: str) -> Segments:
    try:
        message = parse_er7(text, factory=ListFactory)  # hl7.parse, its plan's levels built once
        encoding_characters = str(message[0][2][0])  # MSH-2, which holds the escape character itself
        escapes = text.find(message.esc, 4 + len(encoding_characters)) >= 0
        return from_hl7(message, escapes=escapes)
    except (hl7.ParseException, IndexError, ValueError, AssertionError) as exc:
        raise Hl7ParseError(f"HL7 v2 message could not be parsed ({type(exc).__name__})") from exc


def _header(segments: Segments, declared: str | None, encoding: str, warnings: list[str]) -> AdtHeader:
    msh = segments.one("MSH")
    assert msh is not None
    message_type = msh.first(9)
    trigger = message_type.c(2).upper()
    if not trigger:
        evn = segments.one("EVN")
        trigger = evn.get(1).upper() if evn else ""
        if trigger:
            warnings.append("MSH-9.2 trigger event missing; taken from EVN-1 (v2.2 style)")
    return AdtHeader(
        message_code=message_type.c(1).upper(),
        trigger=trigger,
        structure=message_type.c(3).upper() or None,
        control_id=msh.get(10),
        sending_application=msh.first(3).encode(),
        sending_facility=msh.first(4).encode(),
        receiving_application=msh.first(5).encode(),
        receiving_facility=msh.first(6).encode(),
        message_time=msh.get(7),
        processing_id=msh.get(11),
        version=msh.get(12),
        accept_ack_type=msh.get(15).upper() or None,
        application_ack_type=msh.get(16).upper() or None,
        charset=declared,
        encoding=encoding,
    )
