"""The demographics one person is matched on, normalised once so every comparison is cheap.

Sources spell the same person differently: accents dropped or kept, `O'Brien` or `OBRIEN`,
`Smith-Jones` or `Smith Jones`, `Bill` for `William`, `sw1a1aa` for `SW1A 1AA`. A
`PersonRecord` holds the folded forms; the matcher never sees raw strings. An NHS number is kept
only if it passes the Modulus 11 check and is not a placeholder: anything else proves nothing.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, InvalidNhsNumber, validate
from gateway.types import JSON

NICKNAMES_FILE = Path(__file__).with_name("nicknames.json")

# Letters NFKD does not decompose into ASCII plus a combining mark.
_FOLD_TABLE = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th"})
# Apostrophes and the like vanish (O'Brien → obrien); other punctuation separates words.
_DROP = re.compile(r"['’‘`´.]")
_NON_LETTER = re.compile(r"[^a-z]+")
_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_SEX = {"male": "male", "m": "male", "female": "female", "f": "female", "other": "other"}


def fold(text: str) -> str:
    """Lower case, accents removed, apostrophes dropped, any other non-letter run → one space."""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_FOLD_TABLE))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_LETTER.sub(" ", _DROP.sub("", plain)).strip()


def family_parts(family: str) -> tuple[str, ...]:
    """A surname's parts: `Smith-Jones`, `Smith Jones` and `smith  jones` all give (smith, jones)."""
    return tuple(fold(family).split())


def given_tokens(given: Iterable[str]) -> tuple[str, ...]:
    """Forenames in order. A hyphenated forename stays one name (Jean-Paul → jeanpaul)."""
    tokens: list[str] = []
    for name in given:
        for word in name.split():
            folded = fold(word).replace(" ", "")
            if folded:
                tokens.append(folded)
    return tuple(tokens)


def normalise_postcode(raw: str) -> str | None:
    """`sw1a1aa`, ` SW1A  1AA ` → `SW1A 1AA`; None if it is not shaped like a UK postcode."""
    compact = "".join(raw.upper().split())
    if compact == "GIR0AA":
        return "GIR 0AA"
    found = _POSTCODE.match(compact)
    return f"{found.group(1)} {found.group(2)}" if found else None


def postcode_outward(postcode: str) -> str:
    """The district (`SW1A` of `SW1A 1AA`)."""
    return postcode.split(" ", 1)[0]


def postcode_sector(postcode: str) -> str:
    """The sector (`SW1A 1`): a few streets."""
    return postcode[:-2]


def normalise_sex(raw: str | None) -> str | None:
    """FHIR gender (or a v2-style M/F); unknown and blanks are None, not evidence."""
    return _SEX.get(raw.strip().lower()) if raw else None


def parse_birth_date(raw: str | None) -> tuple[int | None, int | None, int | None]:
    """FHIR date precision: `1950`, `1950-03` or `1950-03-04` → (year, month, day), unknowns None."""
    if not raw:
        return (None, None, None)
    parts = raw.strip()[:10].split("-")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        return (None, None, None)
    year = numbers[0] if numbers and 1000 <= numbers[0] <= 9999 else None
    month = numbers[1] if len(numbers) > 1 and 1 <= numbers[1] <= 12 else None
    day = numbers[2] if len(numbers) > 2 and month and 1 <= numbers[2] <= 31 else None
    return (year, month if year else None, day if year else None)


@lru_cache(maxsize=1)
def _nickname_index() -> Mapping[str, frozenset[str]]:
    table: dict[str, list[str]] = json.loads(NICKNAMES_FILE.read_text(encoding="utf-8"))["names"]
    index: dict[str, set[str]] = {}
    for canonical, familiar in table.items():
        index.setdefault(canonical, set()).add(canonical)
        for name in familiar:
            index.setdefault(name, set()).add(canonical)
    return {name: frozenset(forms) for name, forms in index.items()}


def canonical_forenames(name: str) -> frozenset[str]:
    """The formal forenames a (folded) forename may stand for, itself included."""
    return _nickname_index().get(name, frozenset((name,)))


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """Normalised demographics of one record. Build with `from_patient` or `from_demographics`.

    `postcodes` lists the current postcode first, then earlier ones the record knows of (people
    move; an old address on one record can still agree with the other).
    """

    nhs_number: str | None
    given: tuple[str, ...]
    family: str
    birth_year: int | None
    birth_month: int | None
    birth_day: int | None
    sex: str | None
    postcodes: tuple[str, ...]
    identifiers: tuple[tuple[str, str], ...] = ()
    resource_id: str | None = None
    # Derived once, used on every comparison.
    family_key: str = field(init=False, repr=False, compare=False)
    family_parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    given_canonical: frozenset[str] = field(init=False, repr=False, compare=False)
    # The keys `gateway.identity.blocking.blocking_keys` files and looks the record up under, kept
    # there on first use: a new person's record is looked up twice and filed twice.
    blocking: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = tuple(self.family.split())
        object.__setattr__(self, "family_parts", parts)
        object.__setattr__(self, "family_key", "".join(parts))
        first = self.given[0] if self.given else ""
        object.__setattr__(self, "given_canonical", canonical_forenames(first) if first else frozenset())

    def with_resource_id(self, resource_id: str | None) -> PersonRecord:
        """The same record for the stored resource `resource_id` (blocking keys kept: they do not
        depend on it)."""
        copy = replace(self, resource_id=resource_id)
        object.__setattr__(copy, "blocking", self.blocking)
        return copy

    @property
    def first_given(self) -> str:
        return self.given[0] if self.given else ""

    @property
    def birth_date_text(self) -> str | None:
        """`YYYYMMDD` when the date is complete: the form digit-level comparisons work on."""
        if self.birth_year and self.birth_month and self.birth_day:
            return f"{self.birth_year:04d}{self.birth_month:02d}{self.birth_day:02d}"
        return None

    @classmethod
    def from_demographics(
        cls,
        *,
        given: Sequence[str] = (),
        family: str = "",
        birth_date: str | None = None,
        sex: str | None = None,
        postcodes: Sequence[str] = (),
        nhs_number: str | None = None,
        identifiers: Sequence[tuple[str, str]] = (),
        resource_id: str | None = None,
    ) -> PersonRecord:
        """Normalise raw fields as a source sent them (any case, accents, spacing)."""
        year, month, day = parse_birth_date(birth_date)
        folded_postcodes: list[str] = []
        for raw in postcodes:
            pc = normalise_postcode(raw)
            if pc and pc not in folded_postcodes:
                folded_postcodes.append(pc)
        return cls(
            nhs_number=_usable_nhs_number(nhs_number),
            given=given_tokens(given),
            family=" ".join(family_parts(family)),
            birth_year=year,
            birth_month=month,
            birth_day=day,
            sex=normalise_sex(sex),
            postcodes=tuple(folded_postcodes),
            identifiers=tuple(identifiers),
            resource_id=resource_id,
        )

    @classmethod
    def from_patient(cls, patient: JSON) -> PersonRecord:
        """Read a FHIR R4 Patient (as parsed JSON). Invalid or placeholder NHS numbers are dropped."""
        nhs: str | None = None
        identifiers: list[tuple[str, str]] = []
        for ident in patient.get("identifier") or []:
            system, value = ident.get("system"), ident.get("value")
            if not isinstance(value, str) or not value:
                continue
            if system == NHS_NUMBER_SYSTEM:
                nhs = nhs or _usable_nhs_number(value)
            elif isinstance(system, str):
                identifiers.append((system, value))
        name = _pick_name(patient.get("name") or [])
        given: list[str] = list(name.get("given") or []) if name else []
        family = (name.get("family") or "") if name else ""
        if name and not given and not family and isinstance(name.get("text"), str):
            words = name["text"].split()
            given, family = words[:-1], (words[-1] if words else "")
        return cls.from_demographics(
            given=[g for g in given if isinstance(g, str)],
            family=family if isinstance(family, str) else "",
            birth_date=patient.get("birthDate"),
            sex=patient.get("gender"),
            postcodes=_postcodes(patient.get("address") or []),
            nhs_number=nhs,
            identifiers=identifiers,
            resource_id=patient.get("id"),
        )


def _usable_nhs_number(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return validate(raw)
    except InvalidNhsNumber:
        return None


def _is_current(item: Mapping[str, Any]) -> bool:
    period = item.get("period") or {}
    return not period.get("end")


def _pick_name(names: list[JSON]) -> JSON | None:
    """The official current name, else the usual one, else the first that is not old."""
    current = [n for n in names if isinstance(n, dict) and n.get("use") not in ("old", "maiden") and _is_current(n)]
    for use in ("official", "usual", None):
        for name in current:
            if use is None or name.get("use") == use:
                return name
    return names[0] if names and isinstance(names[0], dict) else None


def _postcodes(addresses: list[JSON]) -> list[str]:
    """Current home postcodes first, then other current ones, then old ones."""

    def rank(address: JSON) -> int:
        if not _is_current(address) or address.get("use") == "old":
            return 2
        return 0 if address.get("use") in ("home", None) else 1

    ordered = sorted((a for a in addresses if isinstance(a, dict)), key=rank)
    return [a["postalCode"] for a in ordered if isinstance(a.get("postalCode"), str)]
