"""A typed, read-only view of a message parsed by python-hl7.

python-hl7 returns nested lists whose depth depends on which separators happened to occur in the
text ("ABC" is a leaf, "A^B" a repetition of components). Mapping code should not care, so each
field is normalised once into repetitions -> components -> subcomponents, unescaped, with the HL7
explicit null ``""`` read as empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
