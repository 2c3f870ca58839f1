"""Read a CLD extract (CSV or JSON records) into rows, one dict per record with its row number.

Readers take the file's bytes or text, never a path: opening files and streaming uploads is
the intake's job. Extracts come out of Excel and SQL Server, so tolerate a UTF-8 BOM, Windows-1252
text, headers in odd case or spacing (`nhs number`, ` NHS_Number `), and cells with stray spaces.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.mappings.social_care.columns import canonical_column


@dataclass(frozen=True)
class SourceRow:
    """One record. `row_number` counts records from 1 (the CSV header is not a record)."""

    row_number: int
    values: dict[str, str]
    problems: tuple[str, ...] = field(default=())  # structural faults found while reading

    def get(self, column: str) -> str:
        return self.values.get(column, "")


class UnreadableExtract(ValueError):
    """The file as a whole cannot be read (not CSV/JSON of the expected shape)."""


def decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_csv(data: bytes | str) -> Iterator[SourceRow]:
    """Rows of a CSV extract with the return's column names as the header."""
    reader = csv.reader(io.StringIO(decode(data), newline=""))
    try:
        header = [canonical_column(h) for h in next(reader)]
    except StopIteration:
        return
    if not any(header):
        raise UnreadableExtract("the CSV header row is empty")
    number = 0
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue  # blank lines, e.g. the trailing one Excel writes
        number += 1
        problems: tuple[str, ...] = ()
        if len(cells) != len(header):
            problems = (f"row has {len(cells)} fields but the header has {len(header)}",)
        values = {col: cell.strip() for col, cell in zip(header, cells, strict=False) if col}
        yield SourceRow(number, values, problems)


def read_json(data: bytes | str) -> Iterator[SourceRow]:
    """Rows of a JSON extract: an array of records, or an object with a `records` array."""
    try:
        doc = json.loads(decode(data))
    except json.JSONDecodeError as exc:
        raise UnreadableExtract(f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    records = doc.get("records") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise UnreadableExtract("expected a JSON array of records or an object with a 'records' array")
    yield from rows_from_records(records)


def rows_from_records(records: Iterable[Any]) -> Iterator[SourceRow]:
    """Rows from already-parsed records (the HTTP intake's one-by-one JSON posts use this too)."""
    for number, record in enumerate(records, start=1):
        if not isinstance(record, Mapping):
            yield SourceRow(number, {}, ("record is not a JSON object",))
            continue
        values = {canonical_column(str(k)): _cell(v) for k, v in record.items()}
        yield SourceRow(number, values)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value).strip()
