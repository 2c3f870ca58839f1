"""Read a community-provider JSON file: an array of records, or an object with a `records` array."""

from __future__ import annotations

import json
from typing import Any


class UnreadableRecords(ValueError):
    """The file as a whole is not JSON of the expected shape."""


def read_records(data: bytes | str) -> list[Any]:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableRecords(f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    records = doc.get("records") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise UnreadableRecords("expected a JSON array of records or an object with a 'records' array")
    return records
