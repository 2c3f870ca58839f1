"""One implementation per search parameter type, all behind the `ParamKind` protocol.

Each kind knows three things about its type: how to turn resource elements into index rows,
how to turn one search value into a WHERE clause over its index table, and what to sort by.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Table, and_, func, not_, or_

from gateway.fhir.errors import invalid
from gateway.store.schema import sp_date, sp_number, sp_reference, sp_string, sp_token, sp_uri

DATE_MIN = datetime(1, 1, 1)
DATE_MAX = datetime(9999, 12, 31, 23, 59, 59, 999999)
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_MAX = 500


@dataclass(frozen=True)
class IndexContext:
    """What extraction needs to know beyond the resource: the server's own base URL."""

    fhir_base: str


class ParamKind(Protocol):
    table: Table
    modifiers: frozenset[str]

    def extract(self, value: Any, ctx: IndexContext) -> list[dict[str, Any]]: ...

    def clause(
        self, raw: str, modifier: str | None, ctx: IndexContext, targets: tuple[str, ...]
    ) -> ColumnElement[bool]: ...

    def sort_value(self, descending: bool) -> ColumnElement[Any]: ...


def split_prefix(raw: str) -> tuple[str, str]:
    if len(raw) > 2 and raw[:2] in PREFIXES and (raw[2].isdigit() or raw[2] in "-+."):
        return raw[:2], raw[2:]
    return "eq", raw


def _clip(text: str) -> str:
    return text[:_MAX]


# --- token ------------------------------------------------------------------------------------


class TokenKind:
    table = sp_token
    modifiers = frozenset({"not", "missing", "text"})

    def extract(self, value: Any, ctx: IndexContext) -> list[dict[str, Any]]:
        if isinstance(value, bool):
            return [{"system": None, "code": "true" if value else "false"}]
        if isinstance(value, str | int | float):
            return [{"system": None, "code": _clip(str(value))}]
        if not isinstance(value, dict):
            return []
        if "coding" in value:
            return [row for coding in value.get("coding") or [] for row in self.extract(coding, ctx)]
        if "code" in value:
            return [{"system": value.get("system"), "code": _clip(str(value["code"]))}]
        if "value" in value:  # Identifier, ContactPoint
            return [{"system": value.get("system"), "code": _clip(str(value["value"]))}]
        return []

    def clause(
        self, raw: str, modifier: str | None, ctx: IndexContext, targets: tuple[str, ...]
    ) -> ColumnElement[bool]:
        t = self.table.c
        if "|" not in raw:
            return t.code == raw
        system, code = raw.split("|", 1)
        if system == "":
            return and_(t.code == code, t.system.is_(None))
        if code == "":
            return t.system == system
        return and_(t.system == system, t.code == code)

    def sort_value(self, descending: bool) -> ColumnElement[Any]:
        return func.max(self.table.c.code) if descending else func.min(self.table.c.code)


# --- string -----------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Case- and accent-insensitive form used for the default and :contains matches."""
    if text.isascii():  # NFKD leaves ASCII alone and it has no combining marks: same result, cheaper
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_NAME_PARTS = ("text", "family", "given", "prefix", "suffix")
_ADDRESS_PARTS = ("text", "line", "city", "district", "state", "postalCode", "country")


class StringKind:
    table = sp_string
    modifiers = frozenset({"exact", "contains", "missing"})

    def extract(self, value: Any, ctx: IndexContext) -> list[dict[str, Any]]:
        texts: list[str] = []
        if isinstance(value, str):
            texts = [value]
        elif isinstance(value, dict):
            keys = _ADDRESS_PARTS if any(k in value for k in ("line", "city", "postalCode")) else _NAME_PARTS
            for key in keys:
                part = value.get(key)
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, list):
                    texts.extend(p for p in part if isinstance(p, str))
        return [{"norm": _clip(normalise(t)), "exact": _clip(t)} for t in texts if t.strip()]

    def clause(
        self, raw: str, modifier: str | None, ctx: IndexContext, targets: tuple[str, ...]
    ) -> ColumnElement[bool]:
        t = self.table.c
        if modifier == "exact":
            return t.exact == raw
        value = _like_escape(normalise(raw))
        if modifier == "contains":
            return t.norm.like(f"%{value}%", escape="\\")
        return t.norm.like(f"{value}%", escape="\\")

    def sort_value(self, descending: bool) -> ColumnElement[Any]:
        return func.max(self.table.c.norm) if descending else func.min(self.table.c.norm)


# --- date -------------------------------------------------------------------------------------

_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(-(?P<m>\d{2})(-(?P<d>\d{2})(T(?P<H>\d{2}):(?P<M>\d{2})(:(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def date_range(text: str) -> tuple[datetime, datetime]:
    """The instant range a FHIR date/dateTime/instant covers, as naive UTC.

    A value without a time zone is taken as UTC (documented in the CapabilityStatement).
    """
    m = _DATE_RE.match(text.strip())
    if not m:
        raise ValueError(f"not a FHIR date: {text!r}")
    y = int(m["y"])
    if m["m"] is None:
        return datetime(y, 1, 1), datetime(y + 1, 1, 1) - timedelta(microseconds=1)
    mo = int(m["m"])
    if m["d"] is None:
        nxt = datetime(y + (mo == 12), mo % 12 + 1, 1)
        return datetime(y, mo, 1), nxt - timedelta(microseconds=1)
    d = int(m["d"])
    if m["H"] is None:
        start = datetime(y, mo, d)
        return start, start + timedelta(days=1) - timedelta(microseconds=1)
    start = datetime(y, mo, d, int(m["H"]), int(m["M"]), int(m["S"] or 0))
    if m["tz"] and m["tz"] != "Z":
        sign = 1 if m["tz"][0] == "+" else -1
        hh, mm = m["tz"][1:].split(":")
        start = start - sign * timedelta(hours=int(hh), minutes=int(mm))
    if m["f"]:
        micro = int((m["f"][1:] + "000000")[:6])
        exact = start + timedelta(microseconds=micro)
        return exact, exact
    width = timedelta(seconds=1) if m["S"] else timedelta(minutes=1)
    return start, start + width - timedelta(microseconds=1)


def utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def date_clause(low: Any, high: Any, prefix: str, sl: datetime, sh: datetime) -> ColumnElement[bool]:
    """Range semantics of FHIR date prefixes: resource range [low, high] vs search range [sl, sh]."""
    if prefix == "eq":
        return and_(low >= sl, high <= sh)
    if prefix == "ne":
        return not_(and_(low >= sl, high <= sh))
    if prefix == "gt":
        return high > sh
    if prefix == "lt":
        return low < sl
    if prefix == "ge":
        return high >= sl
    if prefix == "le":
        return low <= sh
    if prefix == "sa":
        return low > sh
    if prefix == "eb":
        return high < sl
    if prefix == "ap":
        margin = max((sh - sl) * 0.1, timedelta(days=1))
        return and_(low <= sh + margin, high >= sl - margin)
    raise invalid(f"unknown date prefix {prefix!r}")


class DateKind:
    table = sp_date
    modifiers = frozenset({"missing"})

    def extract(self, value: Any, ctx: IndexContext) -> list[dict[str, Any]]:
        try:
            if isinstance(value, str):
                low, high = date_range(value)
                return [{"low": low, "high": high}]
            if isinstance(value, dict) and ("start" in value or "end" in value):
                low = date_range(value["start"])[0] if value.get("start") else DATE_MIN
                high = date_range(value["end"])[1] if value.get("end") else DATE_MAX
                return [{"low": low, "high": high}]
        except ValueError:
            return []
        return []

    def clause(
        self, raw: str, modifier: str | None, ctx: IndexContext, targets: tuple[str, ...]
    ) -> ColumnElement[bool]:
        prefix, text = split_prefix(raw)
        try:
            sl, sh = date_range(text)
        except ValueError as exc:
            raise invalid(f"invalid date search value {raw!r}") from exc
        return date_clause(self.table.c.low, self.table.c.high, prefix, sl, sh)

    def sort_value(self, descending: bool) -> ColumnElement[Any]:
        return func.max(self.table.c.high) if descending else func.min(self.table.c.low)


# --- reference --------------------------------------------------------------------------------


def parse_reference(ref: str, fhir_base: str) -> tuple[str | None, str | None, str | None]:
    """(type, id, url) of a reference: local ones give type+id, others keep their URL."""
    base = fhir_base.rstrip("/") + "/"
    if ref.startswith(base):
        ref = ref[len(base) :]
    if "://" in ref or ref.startswith("urn:") or ref.startswith("#"):
        return None, None, ref
    parts = [p for p in ref.split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 1:
        return None, parts[0], None  # a bare id: the type comes from the parameter or modifier
    return None, None, ref


class ReferenceKind:
    table = sp_reference
    modifiers = frozenset({"missing", "identifier"})  # plus :<Type>, checked by the parser

    def extract(self, value: Any, ctx: IndexContext) -> list[dict[str, Any]]:
        if isinstance(value, str):  # canonical
            return [{"target_type": None, "target_id": None, "url": _clip(value.split("|")[0])}]
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            rtype, rid, url = parse_reference(value["reference"], ctx.fhir_base)
            return [{"target_type": rtype, "target_id": rid, "url": _clip(url) if url else None}]
        return []

    def clause(
        self, raw: str, modifier: str | None, ctx: IndexContext, targets: tuple[str, ...]
    ) -> ColumnElement[bool]:
        t = self.table.c
        rtype, rid, url = parse_reference(raw, ctx.fhir_base)
        if url is not None:
            return t.url == url.split("|")[0]
        if rtype is not None:
            return and_(t.target_type == rtype, t.target_id == rid)
        wanted = modifier if modifier and modifier[0].isupper() else None
        if wanted:
            return and_(t.target_type == wanted, t.target_id == rid)
        if len(targets) == 1:
            return and_(t.target_type == targets[0], t.target_id == rid)
        return t.target_id == rid

    def sort_value(self, descending: bool) -> ColumnElement[Any]:
        c = self.table.c.target_id
        return func.max(c) if descending else func.min(c)


# --- number / quantity ------------------------------------------------------------------------


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise invalid(f"invalid number {text!r}") from exc


def number_clause(col: Any, prefix: str, text: str) -> ColumnElement[bool]:
    value = _decimal(text)
    exponent = value.as_tuple().exponent
    half = Decimal(5) * Decimal(10) ** (int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    lo, hi, v = float(value - half), float(value + half), float(value)
    clauses: dict[str, ColumnElement[bool]] = {
        "eq": and_(col >= lo, col < hi),
        "ne": or_(col < lo, col >= hi),
        "gt": col > v,
        "lt": col < v,
        "ge": col >= v,
        "le": col <= v,
        "sa": col > v,
        "eb": col < v,
        "ap": and_(col >= v * 0.9, col <= v * 1.1) if v >= 0 else and_(col <= v * 0.9, col >= v * 1.1),
    }
    return clauses[prefix]


class NumberKind:
    table = sp_number
    modifiers = frozenset({"missing"})

    def extract(self, value: Any, ctx: IndexContext) -> list[dict[str, Any]]:
        if isinstance(value, bool):
            return []
        if isinstance(value, int | float):
            return [{"value": float(value), "system": None, "code": None}]
        if isinstance(value, dict) and isinstance(value.get("value"), int | float):
            return [{"value": float(value["value"]), "system": value.get("system"), "code": value.get("code")}]
        return []

    def clause(
        self, raw: str, modifier: str | None, ctx: IndexContext, targets: tuple[str, ...]
    ) -> ColumnElement[bool]:
        prefix, text = split_prefix(raw)
        parts = text.split("|")
        cond = number_clause(self.table.c.value, prefix, parts[0])
        if len(parts) == 3:
            system, code = parts[1], parts[2]
            if system:
                cond = and_(cond, self.table.c.system == system)
            if code:
                cond = and_(cond, self.table.c.code == code)
        return cond

    def sort_value(self, descending: bool) -> ColumnElement[Any]:
        return func.max(self.table.c.value) if descending else func.min(self.table.c.value)


# --- uri --------------------------------------------------------------------------------------


class UriKind:
    table = sp_uri
    modifiers = frozenset({"missing", "below"})

    def extract(self, value: Any, ctx: IndexContext) -> list[dict[str, Any]]:
        return [{"value": _clip(value)}] if isinstance(value, str) else []

    def clause(
        self, raw: str, modifier: str | None, ctx: IndexContext, targets: tuple[str, ...]
    ) -> ColumnElement[bool]:
        if modifier == "below":
            return self.table.c.value.like(_like_escape(raw) + "%", escape="\\")
        return self.table.c.value == raw

    def sort_value(self, descending: bool) -> ColumnElement[Any]:
        return func.max(self.table.c.value) if descending else func.min(self.table.c.value)


KINDS: dict[str, ParamKind] = {
    "token": TokenKind(),
    "string": StringKind(),
    "date": DateKind(),
    "reference": ReferenceKind(),
    "number": NumberKind(),
    "quantity": NumberKind(),
    "uri": UriKind(),
}

__all__ = ["DATE_MAX", "DATE_MIN", "KINDS", "IndexContext", "ParamKind", "date_range", "normalise"]
