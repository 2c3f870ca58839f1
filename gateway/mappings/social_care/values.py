"""The CLD defined value lists, read from `profiles/CodeSystem-asc-*.json`.

Councils spell defined values loosely ('NFA- Other', 'NFA - Other', 'Admitted to Hospital'), and
NHS England's own scripts carry both spellings of several outcomes. Matching therefore compares
letters and digits only, case-folded; what we store is the canonical code and display.

A column's code system file is named after the column: `Service_Type` → `CodeSystem-asc-service-type.json`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gateway.codes import CANONICAL_BASE
from gateway.paths import PROFILES_DIR
from gateway.types import JSON

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=4096)
def match_key(value: str) -> str:
    """The spelling-insensitive key a defined value is matched on (kept per spelling: an extract
    repeats the same few spellings on every row)."""
    return _NOT_ALNUM.sub("", value.casefold())


def system_url(column: str) -> str:
    return f"{CANONICAL_BASE}/CodeSystem/asc-{_slug(column)}"


def _slug(column: str) -> str:
    return column.lower().replace("_", "-")


@dataclass(frozen=True)
class Concept:
    system: str
    code: str
    display: str
    properties: dict[str, str | bool]

    def coding(self) -> JSON:
        return {"system": self.system, "code": self.code, "display": self.display}

    def codeable(self) -> JSON:
        return {"coding": [self.coding()], "text": self.display}


@dataclass(frozen=True)
class DefinedList:
    column: str
    system: str
    by_key: dict[str, Concept]

    def resolve(self, raw: str) -> Concept | None:
        return self.by_key.get(match_key(raw))

    @property
    def concepts(self) -> list[Concept]:
        return list(self.by_key.values())


def _load(path: Path) -> DefinedList:
    cs = json.loads(path.read_text(encoding="utf-8"))
    column = _column_from_id(cs["id"])
    by_key: dict[str, Concept] = {}
    for c in cs["concept"]:
        props: dict[str, str | bool] = {}
        for p in c.get("property", []):
            props[p["code"]] = p.get("valueCode", p.get("valueBoolean", p.get("valueString")))
        concept = Concept(cs["url"], c["code"], c["display"], props)
        key = match_key(c["display"])
        if key in by_key:  # two values that only differ in punctuation would be ambiguous
            raise ValueError(f"{path.name}: '{c['display']}' collides with '{by_key[key].display}'")
        by_key[key] = concept
    return DefinedList(column, cs["url"], by_key)


def _column_from_id(cs_id: str) -> str:
    return cs_id.removeprefix("asc-")


@cache
def defined_lists(profiles_dir: Path = PROFILES_DIR) -> dict[str, DefinedList]:
    """Every defined list, keyed by column slug (`service-type`)."""
    return {dl.column: dl for dl in map(_load, sorted(profiles_dir.glob("CodeSystem-asc-*.json")))}


def defined_list(column: str) -> DefinedList:
    """The defined list for a CLD column name (`Service_Type`); KeyError if the column has none."""
    return defined_lists()[_slug(column)]
