"""Build HL7 v2 ACK messages (pure: the caller passes `now` and may pass the ACK's control id).

Original mode (MSH-15/16 empty): AA / AE / AR. Enhanced mode (MSH-15 or MSH-16 filled, as Epic
sends ``AL``/``NE``): the gateway answers with the commit ACK, CA / CE / CR. MSA-2 always echoes
the incoming MSH-10, and MSH-3..6 are the incoming MSH-5/6/3/4 swapped, so the sender can pair the
ACK with its message. Errors carry an ERR segment in the shape the sender's version expects
(ERR-1 before v2.5, ERR-2/3/4/8 from v2.5).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from gateway.mappings.hl7v2.errors import AckCode, AdtMappingError, Hl7ParseError
from gateway.mappings.hl7v2.fields import escape
from gateway.mappings.hl7v2.parse import AdtHeader, normalise_terminators, parse_message, version_tuple

__all__ = ["GATEWAY_APPLICATION", "ack_code", "ack_wanted", "build_ack", "build_unparseable_ack"]

GATEWAY_APPLICATION = "CARE-GATEWAY"
_ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}
_DEFAULT_VERSION = "2.5"

# HL7 table 0357 texts for the codes this package raises.
_ERROR_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "207": "Application internal error",
}


def ack_code(header: AdtHeader | None, code: AckCode) -> str:
    """The MSA-1 value: `code` itself in original mode, its commit form in enhanced mode."""
    return _ENHANCED[code] if header is not None and header.enhanced_mode else code


def ack_wanted(header: AdtHeader, code: AckCode) -> bool:
    """Whether the sender asked for this acknowledgement (MSH-15 in enhanced mode).

    Original mode always acknowledges. In enhanced mode AL = always, NE = never, ER = only on
    error, SU = only on success; a blank MSH-15 next to a filled MSH-16 means always.
    """
    if not header.enhanced_mode:
        return True
    rule = header.accept_ack_type or "AL"
    if rule == "NE":
        return False
    if rule == "ER":
        return code != "AA"
    if rule == "SU":
        return code == "AA"
    return True


def build_ack(
    header: AdtHeader,
    code: AckCode,
    *,
    now: datetime,
    error: AdtMappingError | None = None,
    control_id: str | None = None,
) -> bytes:
    """The ACK for a message whose header could be read, encoded in the message's own charset."""
    version = header.version or _DEFAULT_VERSION
    if version_tuple(version) >= (2, 3, 1):
        message_type = f"ACK^{header.trigger}^ACK" if header.trigger else "ACK^^ACK"
    else:
        message_type = f"ACK^{header.trigger}" if header.trigger else "ACK"
    msh = [
        "MSH",
        "^~\\&",
        header.receiving_application or GATEWAY_APPLICATION,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        _timestamp(now),
        "",
        message_type,
        escape(control_id or _ack_control_id(header.control_id, now)),
        escape(header.processing_id or "P"),
        escape(version),
    ]
    if header.charset:
        msh += ["", "", "", "", "", escape(header.charset)]
    segments = ["|".join(msh), _msa(ack_code(header, code), header.control_id, error)]
    if error is not None:
        segments.append(_err(error, version))
    return ("\r".join(segments) + "\r").encode(header.encoding, errors="replace")


def build_unparseable_ack(raw: bytes, error: AdtMappingError, *, now: datetime, control_id: str | None = None) -> bytes:
    """Best-effort reject (AR/CR) for input whose body could not be parsed.

    If the MSH segment alone is readable the ACK is addressed and paired as usual; otherwise it
    goes out with an empty MSA-2, which is all that can be said about bytes that are not HL7.
    """
    header = _readable_header(raw)
    if header is not None:
        return build_ack(header, "AR", now=now, error=error, control_id=control_id)
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            GATEWAY_APPLICATION,
            "",
            "",
            "",
            _timestamp(now),
            "",
            "ACK^^ACK",
            escape(control_id or _ack_control_id("", now)),
            "P",
            _DEFAULT_VERSION,
        ]
    )
    return "\r".join([msh, _msa("AR", "", error), _err(error, _DEFAULT_VERSION), ""]).encode("ascii", "replace")


def _readable_header(raw: bytes) -> AdtHeader | None:
    data = normalise_terminators(raw)
    for candidate in (data, data.split(b"\r", 1)[0]):
        try:
            return parse_message(candidate).header
        except Hl7ParseError:
            continue
    return None


def _msa(code: str, control_id: str, error: AdtMappingError | None) -> str:
    fields = ["MSA", code, escape(control_id)]
    if error is not None:
        fields.append(escape(error.reason)[:80])  # MSA-3 is 80 characters up to v2.4
    return "|".join(fields)


def _err(error: AdtMappingError, version: str) -> str:
    text = _ERROR_TEXT.get(error.error_code, "Application error")
    location = error.location or ""
    if version_tuple(version) >= (2, 5):
        severity = "E"
        code = f"{error.error_code}^{text}^HL70357"
        return "|".join(["ERR", "", location, code, severity, "", "", "", escape(error.reason)])
    parts = [*location.split("^"), "", "", ""][:3]
    return "ERR|" + "^".join([*parts, f"{error.error_code}&{text}&HL70357"])


def _timestamp(now: datetime) -> str:
    return _formatted(now, now.utcoffset())


@functools.lru_cache(maxsize=16)
def _formatted(now: datetime, offset: timedelta | None) -> str:
    # Cached, as a batch's messages share one `now` (strftime with %z costs ~5 µs an ACK). The
    # offset is part of the key: equal instants in two zones are equal datetimes, not equal text.
    return now.strftime("%Y%m%d%H%M%S%z") if now.tzinfo else now.strftime("%Y%m%d%H%M%S")


def _ack_control_id(incoming: str, now: datetime) -> str:
    """Deterministic: the same message acknowledged at the same moment gets the same id."""
    return f"ACK{incoming}"[:20] if incoming else f"ACK{now.strftime('%Y%m%d%H%M%S%f')}"[:20]
