"""HL7 TS/DTM values -> FHIR date, dateTime and instant strings.

A TS without an offset is wall-clock time where the sender is (`SourceSystem.timezone`). In the UK
that wall clock skips an hour each March and repeats one each October, so a bare local time can
name no instant or two. Python's `zoneinfo` rules (PEP 495, fold=0) decide both cases the same way
every time — a skipped time is read with the offset in force before the change (GMT), a repeated
time as the first occurrence (BST) — and the caller gets a warning saying so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

_TS = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?P<frac>\.\d{1,4})?(?P<tz>[+-]\d{4})?$"
)


@dataclass(frozen=True)
class Timestamp:
    """A parsed TS. `moment` is set when the value has a time of day; `date` is the FHIR date part."""

    date: str  # YYYY, YYYY-MM or YYYY-MM-DD
    moment: datetime | None  # timezone-aware
    warning: str | None = None

    def fhir_datetime(self) -> str:
        """FHIR dateTime: a (partial) date, or a full time with seconds and an offset."""
        if self.moment is None:
            return self.date
        return _iso(self.moment)

    def fhir_instant(self) -> str | None:
        """FHIR instant (needs a full time); None when the TS carries only a date."""
        return _iso(self.moment) if self.moment is not None else None


def _iso(moment: datetime) -> str:
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec)


@lru_cache(maxsize=4096)
def parse_ts(raw: str, tz: str, *, label: str) -> tuple[Timestamp | None, str | None]:
    """Parse a TS (component 1). Returns (None, None) for blank, (None, warning) for garbage,
    and a warning beside the value when a local time falls in a DST change. `label` names the
    field in warnings (``PV1-44``).

    Remembered (the answer is immutable): a message repeats its times (MSH-7, EVN-2, PV1-44) and a
    sender's messages of one second share them, and attaching a zone is the costly part."""
    text = raw.strip()
    if not text:
        return None, None
    match = _TS.match(text)
    if match is None:
        return None, f"{label} is not a valid HL7 timestamp; ignored"
    parts = match.groupdict()
    try:
        year = int(parts["y"])
        month = int(parts["mo"] or 1)
        day = int(parts["d"] or 1)
        datetime(year, month, day)  # validates the calendar date
    except ValueError:
        return None, f"{label} is not a valid calendar date; ignored"
    date = parts["y"] + (f"-{parts['mo']}" if parts["mo"] else "") + (f"-{parts['d']}" if parts["d"] else "")
    if not (parts["d"] and parts["h"]):
        return Timestamp(date, None), None
    try:
        micro = round(float(parts["frac"]) * 1_000_000) if parts["frac"] else 0
        naive = datetime(
            year, month, day, int(parts["h"]), int(parts["mi"] or 0), int(parts["s"] or 0), min(micro, 999_999)
        )
    except ValueError:
        return None, f"{label} has an invalid time of day; ignored"
    if parts["tz"]:
        sign = 1 if parts["tz"][0] == "+" else -1
        offset = timedelta(hours=int(parts["tz"][1:3]), minutes=int(parts["tz"][3:5]))
        return Timestamp(date, naive.replace(tzinfo=timezone(sign * offset))), None
    moment, warning = localise(naive, tz, label=label)
    return Timestamp(date, moment), warning


def localise(naive: datetime, tz: str, *, label: str) -> tuple[datetime, str | None]:
    """Attach the sender's zone to a wall-clock time, flagging the DST gap and overlap."""
    zone = ZoneInfo(tz)
    first = naive.replace(tzinfo=zone, fold=0)
    second = naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first, None
    when = naive.strftime("%Y-%m-%d %H:%M")
    # Round-tripping through UTC lands on a different wall time only for a skipped (gap) time.
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return first, (
            f"{label}: local time {when} does not exist in {tz} (clocks went forward); "
            f"read with the earlier offset {_offset(first)}"
        )
    return first, (
        f"{label}: local time {when} occurs twice in {tz} (clocks went back); "
        f"read as the first occurrence {_offset(first)}"
    )


def _offset(moment: datetime) -> str:
    return moment.isoformat()[-6:]
