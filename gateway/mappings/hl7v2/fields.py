"""A typed, read-only view of an HL7 v2 message: segments -> fields -> repetitions -> components.

Mapping code should not care how deep a field's text happened to nest ("ABC" is a leaf, "A^B" a
repetition of components), so each field is normalised once into repetitions -> components ->
subcomponents, unescaped, with the HL7 explicit null ``""`` read as empty.

`split_er7` builds that view straight from the text with `str.split` (every message of the intake
passes here, and python-hl7's container tree cost ten times more); it gives exactly what
`from_hl7(hl7.parse(text))` gives, and hands the rare odd shapes it does not reproduce (a segment
without a field separator, an MSH without its encoding characters) back to python-hl7.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from hl7.util import unescape

_EXPLICIT_NULL = '""'


@dataclass(frozen=True)
class Rep:
    """One repetition of a field: components, each a tuple of subcomponents (1-based access)."""

    components: tuple[tuple[str, ...], ...]

    def c(self, component: int, sub: int = 1) -> str:
        """Component `component`, subcomponent `sub`, stripped; "" when absent."""
        if component > len(self.components):
            return ""
        subs = self.components[component - 1]
        return subs[sub - 1].strip() if sub <= len(subs) else ""

    @property
    def empty(self) -> bool:
        return not any(s.strip() for comp in self.components for s in comp)

    def encode(self) -> str:
        """Back to wire text with the standard separators (used to echo HD fields in the ACK)."""
        return "^".join("&".join(escape(s) for s in comp) for comp in self.components).rstrip("^&")


_EMPTY_REP = Rep(((),))


@dataclass(frozen=True)
class Seg:
    """One segment. `fields[n]` is field n (MSH-1 is the field separator, as in the standard)."""

    name: str
    fields: tuple[tuple[Rep, ...], ...]

    def reps(self, field: int) -> tuple[Rep, ...]:
        """The non-empty repetitions of a field."""
        if field >= len(self.fields):
            return ()
        return tuple(r for r in self.fields[field] if not r.empty)

    def first(self, field: int) -> Rep:
        found = self.reps(field)
        return found[0] if found else _EMPTY_REP

    def get(self, field: int, component: int = 1, sub: int = 1) -> str:
        """First repetition's component value, stripped; "" when absent."""
        return self.first(field).c(component, sub)


@dataclass(frozen=True)
class Segments:
    """All segments of a message in order, with lookup by name."""

    items: tuple[Seg, ...]

    def __iter__(self) -> Iterator[Seg]:
        return iter(self.items)

    def all(self, name: str) -> list[Seg]:
        return [s for s in self.items if s.name == name]

    def one(self, name: str) -> Seg | None:
        for seg in self.items:
            if seg.name == name:
                return seg
        return None


def escape(text: str) -> str:
    """Escape a value for the standard encoding characters ``|^~\\&`` (HL7 2.7 escape sequences)."""
    out = text.replace("\\", "\\E\\")
    for ch, code in (("|", "F"), ("^", "S"), ("~", "R"), ("&", "T")):
        out = out.replace(ch, f"\\{code}\\")
    return out.replace("\r", " ").replace("\n", " ")


def from_hl7(message: Any) -> Segments:
    """Normalise a python-hl7 `Message` into `Segments`.

    Written for speed (every message of the intake passes here): plain values, which are most of
    them, skip the unescaping, and the many empty fields share one `Rep`.
    """
    esc = message.esc

    def leaf(value: Any) -> str:
        text = value if type(value) is str else str(value)
        if text == _EXPLICIT_NULL:
            return ""
        return str(unescape(message, text)) if esc in text else text

    segments: list[Seg] = []
    for segment in message:
        name = str(segment[0][0]).strip()
        fields: list[tuple[Rep, ...]] = [(Rep(((name,),)),)]
        for index in range(1, len(segment)):
            field = segment[index]
            if index <= 2 and name == "MSH":
                # MSH-1/MSH-2 are the separators themselves: never unescape them.
                fields.append((Rep(((str(field[0]),),)),))
                continue
            reps: list[Rep] = []
            for item in (field,) if isinstance(field, str) else field:
                if isinstance(item, str):
                    reps.append(_EMPTY_FIELD_REP if item == "" else Rep(((leaf(item),),)))
                else:
                    reps.append(
                        Rep(tuple((leaf(comp),) if isinstance(comp, str) else tuple(map(leaf, comp)) for comp in item))
                    )
            fields.append(tuple(reps))
        segments.append(Seg(name, tuple(fields)))
    return Segments(tuple(segments))


_EMPTY_FIELD_REP = Rep((("",),))


class _Separators(NamedTuple):
    """What python-hl7's `unescape` reads from a message: its escape character and separators."""

    esc: str
    separators: str  # segment, field, repetition, component, subcomponent


_HEADER_SEGMENTS = ("MSH", "BHS", "FHS")


def _encoding_characters(text: str) -> tuple[str, str, str, str, str] | None:
    """(field, repetition, component, subcomponent, escape) as MSH-1/MSH-2 declare them, with
    python-hl7's defaults for any left out; None when MSH-2 is not closed by a field separator."""
    field_sep = text[3]
    end = text.find(field_sep, 4)
    if end < 0:
        return None
    declared = text[4:end]
    component = declared[0] if len(declared) > 0 else "^"
    repetition = declared[1] if len(declared) > 1 else "~"
    escape_char = declared[2] if len(declared) > 2 else "\\"
    subcomponent = declared[3] if len(declared) > 3 else "&"
    return field_sep, repetition, component, subcomponent, escape_char


def split_er7(text: str) -> Segments | None:
    """The message's `Segments`, as `from_hl7(hl7.parse(text))` would give them; None for a shape
    this does not reproduce (the caller then asks python-hl7)."""
    text = text.strip()
    if text[:3] not in _HEADER_SEGMENTS or len(text) < 4:
        return None
    chars = _encoding_characters(text)
    if chars is None:
        return None
    field_sep, rep_sep, comp_sep, sub_sep, esc = chars
    context = _Separators(esc, "\r" + field_sep + rep_sep + comp_sep + sub_sep)
    others = (rep_sep, comp_sep, sub_sep)
    rep_cache: dict[str, Rep] = {}

    def leaf(value: str) -> str:
        if value == _EXPLICIT_NULL:
            return ""
        return str(unescape(context, value)) if esc in value else value

    def rep(value: str) -> Rep:
        found = rep_cache.get(value)
        if found is None:
            if comp_sep not in value and sub_sep not in value:
                found = Rep(((leaf(value),),))
            else:
                found = Rep(tuple(tuple(map(leaf, comp.split(sub_sep))) for comp in value.split(comp_sep)))
            rep_cache[value] = found
        return found

    segments: list[Seg] = []
    for segment in text.split("\r"):
        head = segment[:3]
        if head in _HEADER_SEGMENTS:
            if segment[3:4] != field_sep:
                return None
            end = segment.find(field_sep, 4)
            if end < 0:
                return None
            fields: list[tuple[Rep, ...]] = [
                (Rep(((head,),)),),
                (Rep(((field_sep,),)),),
                (Rep(((segment[4:end],),)),),
            ]
            rest = segment[end + 1 :]
            values = rest.split(field_sep) if rest else []
        else:
            values = segment.split(field_sep)
            name = values[0]
            if any(sep in name for sep in others):
                return None  # python-hl7 names such a segment after a piece of its first field
            if len(values) < 2:
                if not segment:
                    return None
                # python-hl7 names a segment without fields ("PD1") after its first character.
                name = segment[0]
            fields = [(Rep(((name.strip(),),)),)]
            values = values[1:]
        for value in values:
            if not value:
                fields.append(_EMPTY_FIELD)
            elif rep_sep in value:
                fields.append(tuple(rep(r) for r in value.split(rep_sep)))
            else:
                fields.append((rep(value),))
        segments.append(Seg(fields[0][0].components[0][0], tuple(fields)))
    return Segments(tuple(segments))


_EMPTY_FIELD = (_EMPTY_FIELD_REP,)
