"""Blocking: which already-known people are worth scoring against a new record.

Scoring every pair is quadratic; blocking keeps only records that share at least one key
with the query. Several keys, each tolerant of a different kind of error, so that one wrong
field never hides a duplicate:

- `n`   NHS number;
- `d`   birth date with day and month unordered (exact and day/month-swapped dates meet);
- `ny`  phonetic code (Soundex) of each surname part and of the first forename, plus birth year
        (typos, double-barrelled names, swapped given/family names, moved address);
- `nmd` the same phonetic codes plus birth month and day (a wrong birth year);
- `py`  postcode plus birth year, `pn` postcode plus any of the phonetic codes (date errors).

A key shared by more than `max_block` records (a postcode of a care home, a common surname in a
common year) says little and would cost a lot, so it is skipped at query time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Protocol

import jellyfish

from gateway.identity.person import PersonRecord


class CandidateIndex(Protocol):
    """Where the matcher finds the people it scores; in memory here, a store table elsewhere."""

    def add(self, record_id: str, record: PersonRecord) -> None: ...

    def remove(self, record_id: str) -> None: ...

    def candidates(self, record: PersonRecord) -> Iterable[tuple[str, PersonRecord]]: ...


@lru_cache(maxsize=65536)
def phonetic(name: str) -> str:
    """Soundex of a folded name part (letters only)."""
    return jellyfish.soundex(name) if name else ""


def blocking_keys(record: PersonRecord) -> frozenset[str]:
    """Every key the record is filed under (and looked up by); worked out once per record."""
    found = record.blocking
    if found is None:
        found = frozenset(_keys_of(record))
        object.__setattr__(record, "blocking", found)  # a frozen record's derived field, as in its __post_init__
    return found


def _keys_of(record: PersonRecord) -> set[str]:
    keys: set[str] = set()
    if record.nhs_number:
        keys.add(f"n|{record.nhs_number}")
    year, month, day = record.birth_year, record.birth_month, record.birth_day
    if year and month and day:
        low, high = sorted((month, day))
        keys.add(f"d|{year}|{low}|{high}")
    codes = {phonetic(part) for part in record.family_parts}
    if record.first_given:
        codes.add(phonetic(record.first_given))
    codes.discard("")
    for code in codes:
        if year:
            keys.add(f"ny|{code}|{year}")
        if month and day:
            keys.add(f"nmd|{code}|{month}|{day}")
    for postcode in record.postcodes:
        if year:
            keys.add(f"py|{postcode}|{year}")
        for code in codes:
            keys.add(f"pn|{postcode}|{code}")
    return keys


class InMemoryCandidateIndex:
    """A dictionary from blocking key to record ids; fast enough for a few hundred thousand people."""

    def __init__(self, *, max_block: int = 1000) -> None:
        self.max_block = max_block
        self._records: dict[str, PersonRecord] = {}
        self._keys: dict[str, frozenset[str]] = {}
        self._blocks: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._records

    def get(self, record_id: str) -> PersonRecord | None:
        return self._records.get(record_id)

    def add(self, record_id: str, record: PersonRecord) -> None:
        """File a record (replacing any earlier version under the same id)."""
        if record_id in self._records:
            self.remove(record_id)
        keys = blocking_keys(record)
        self._records[record_id] = record
        self._keys[record_id] = keys
        for key in keys:
            self._blocks.setdefault(key, set()).add(record_id)

    def remove(self, record_id: str) -> None:
        """Forget a record (merged away or deleted); unknown ids are ignored."""
        self._records.pop(record_id, None)
        for key in self._keys.pop(record_id, frozenset()):
            block = self._blocks.get(key)
            if block is not None:
                block.discard(record_id)
                if not block:
                    del self._blocks[key]

    def candidates(self, record: PersonRecord) -> Iterator[tuple[str, PersonRecord]]:
        """Each record sharing a selective key with `record`, once, in a stable order."""
        found: set[str] = set()
        for key in blocking_keys(record):
            block = self._blocks.get(key)
            if block and (len(block) <= self.max_block or key.startswith("n|")):
                found |= block
        for record_id in sorted(found):
            yield record_id, self._records[record_id]
