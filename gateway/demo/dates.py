"""The demo's one date rule: the fixtures are written as of REFERENCE_DAY, and every date in them moves
by the whole days between that day and the day the demo is loaded.

So the story keeps its shape on any date: the same ages, the same admissions in the case-finding
window (the past 12 months), the care plans' reviews due on the day of loading, the agreements in
force. Birth dates move too (an age is the span to today). Only values written to the day are
moved; times of day and UTC offsets are kept as written. Pure functions, one per format the
fixtures use: FHIR JSON, the council's CSV extract, the hospital's HL7 v2 messages.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from typing import Any

# The story's "today": after the history (the last discharge is 19 October), three months into the
# virtual ward (enrolled 1 September), the day the joint care plans' reviews fall due.
REFERENCE_DAY = date(2026, 12, 1)

# A FHIR date or dateTime written to the day (`1938-12-10`, `2026-08-27T10:00:00+01:00`).
_FHIR_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?$")
# The extract's date columns, by name (ASC CLD: Reporting_Period_Start_Date, Date_of_Birth …).
_CSV_DATE_COLUMN = re.compile(r"(^|_)Date(_|$)")
_UK_DAY = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
# HL7 v2 fields holding a date/time (DTM, `YYYYMMDD[HHMM[SS]]…`), by segment and field number.
HL7_DATE_FIELDS: dict[str, tuple[int, ...]] = {
    "MSH": (7,),  # message date/time
    "EVN": (2, 6),  # recorded, event occurred
    "PID": (7, 29),  # birth, death
    "PV1": (44, 45),  # admit, discharge
}


def days_since_reference(today: date) -> int:
    """How far the demo's dates move when it is loaded on `today`."""
    return (today - REFERENCE_DAY).days


def _moved(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def shift_json(node: Any, days: int) -> Any:
    """A copy of parsed JSON with every date / dateTime string written to the day moved by `days`."""
    if isinstance(node, dict):
        return {key: shift_json(value, days) for key, value in node.items()}
    if isinstance(node, list):
        return [shift_json(value, days) for value in node]
    if isinstance(node, str) and (found := _FHIR_DAY.match(node)):
        return _moved(found.group(1), days) + node[len(found.group(1)) :]
    return node


def _shift_cell(value: str, days: int) -> str:
    if found := _FHIR_DAY.match(value):
        return _moved(found.group(1), days) + value[len(found.group(1)) :]
    if found := _UK_DAY.match(value):
        day, month, year = found.groups()
        moved = date(int(year), int(month), int(day)) + timedelta(days=days)
        return moved.strftime("%d/%m/%Y")
    return value


def shift_csv(data: bytes, days: int) -> bytes:
    """The extract with every value of its date columns moved by `days` (ISO or DD/MM/YYYY kept)."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    if not rows:
        return data
    dated = [i for i, name in enumerate(rows[0]) if _CSV_DATE_COLUMN.search(name)]
    for row in rows[1:]:
        for i in dated:
            if i < len(row) and row[i]:
                row[i] = _shift_cell(row[i], days)
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _shift_dtm(value: bytes, days: int) -> bytes:
    if len(value) < 8 or not value[:8].isdigit():
        return value
    day = date(int(value[:4]), int(value[4:6]), int(value[6:8])) + timedelta(days=days)
    return day.strftime("%Y%m%d").encode() + value[8:]


def shift_hl7(message: bytes, days: int) -> bytes:
    """One ER7 message (segments split by CR) with its date/time fields (HL7_DATE_FIELDS) moved by `days`."""
    segments = message.split(b"\r")
    for n, segment in enumerate(segments):
        fields = segment.split(b"|")
        name = fields[0].decode("ascii", "replace")
        for number in HL7_DATE_FIELDS.get(name, ()):
            index = number - 1 if name == "MSH" else number  # MSH-1 is the separator itself
            if index < len(fields):
                components = fields[index].split(b"^")
                components[0] = _shift_dtm(components[0], days)
                fields[index] = b"^".join(components)
        segments[n] = b"|".join(fields)
    return b"\r".join(segments)
