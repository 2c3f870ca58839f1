"""Turn raw HL7 v2 bytes into text, honouring MSH-18 and never failing on odd bytes.

Senders get MSH-18 wrong often (declare ASCII, send Windows-1252; leave it blank and send UTF-8),
so the declared charset is tried first, then a fixed fallback chain. Latin-1 ends the chain because
it maps every byte, so decoding can never raise; a warning records any fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

# HL7 table 0211 (alternate character sets) -> Python codec. Keys are upper-case.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "ISO IR101": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "CP1252": "cp1252",
    "WINDOWS-1252": "cp1252",
}

# When MSH-18 is blank: valid UTF-8 with non-ASCII bytes is almost never accidental, so it is tried
# before the 8-bit code pages UK PAS systems actually emit (Windows-1252, then Latin-1).
_FALLBACKS = ("utf-8", "cp1252", "latin-1")
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Decoded:
    text: str
    encoding: str  # the Python codec that decoded the bytes
    warning: str | None = None


def codec_for(declared: str | None) -> str | None:
    """The Python codec for an MSH-18 value, or None when blank or unknown."""
    if not declared:
        return None
    return CHARSETS.get(declared.strip().upper())


def decode(raw: bytes, declared: str | None) -> Decoded:
    """Decode `raw` per the declared MSH-18 value, falling back without ever raising."""
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    if raw.isascii():
        # ASCII is a subset of every supported codec; report the declared one so the ACK matches.
        return Decoded(raw.decode("ascii"), codec_for(declared) or "ascii")
    wanted = codec_for(declared)
    warning: str | None = None
    if declared and wanted is None:
        warning = f"MSH-18 character set {declared.strip()!r} is not supported"
    if wanted is not None:
        try:
            return Decoded(raw.decode(wanted), wanted)
        except UnicodeDecodeError:
            warning = f"bytes are not valid {declared!s} as MSH-18 declares"
    for codec in _FALLBACKS:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        note = f"{warning}; decoded as {codec}" if warning else None
        return Decoded(text, codec, note)
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover
