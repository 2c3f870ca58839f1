"""A typed, read-only view of a message parsed by python-hl7.

python-hl7 returns nested lists whose depth depends on which separators happened to occur in the
text ("ABC" is a leaf, "A^B" a repetition of components). Mapping code should not care, so each
field is normalised into repetitions -> components -> subcomponents, unescaped, with the HL7
explicit null ``""`` read as empty.

Every message of the intake passes here, so two things keep it cheap. `ListFactory` has python-hl7
build its tree from plain lists (its own containers carry separators and a factory in every
node, which is most of its parse time); and a field is normalised when the mapping first reads it
(a segment has dozens, a mapping reads a few), unless the message holds escape sequences: then
every field is unescaped at once, so an escape python-hl7 cannot read still fails the parse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import hl7
from hl7.util import unescape

_EXPLICIT_NULL = '""'


class _Message(list[Any]):
    """The message node: python-hl7's `unescape` reads the escape character and separators here."""

    def __init__(self, sequence: Sequence[Any], esc: str, separators: str) -> None:
        super().__init__(sequence)
        self.esc = esc
        self.separators = separators


def _message(sequence: Sequence[Any], esc: str = "\\", separators: str = "\r|~^&", factory: Any = None) -> _Message:
    return _Message(sequence, esc, separators)


def _plain() -> Any:
    # A function of its own per level: python-hl7 tells the segment level by the factory method.
    def build(sequence: Sequence[Any], esc: str = "\\", separators: str = "\r|~^&", factory: Any = None) -> list[Any]:
        return list(sequence)

    return staticmethod(build)


class ListFactory(hl7.Factory):
    """python-hl7's documented factory hook, building each level of the tree as a plain list."""

    create_message = staticmethod(_message)
    create_segment = _plain()
    create_field = _plain()
    create_repetition = _plain()
    create_component = _plain()


class Rep:
    """One repetition of a field: components, each a tuple of subcomponents (1-based access).

    Read-only by convention; equal (and hashed) by its components. Whether it is empty is worked
    out once, when it is made: every field the mapping reads is filtered on it.
    """

    __slots__ = ("components", "empty")

    components: tuple[tuple[str, ...], ...]
    empty: bool  # no subcomponent holds more than white space

    def __init__(self, components: tuple[tuple[str, ...], ...], empty: bool | None = None) -> None:
        self.components = components
        # All white space joined is still white space: one strip instead of one per subcomponent.
        self.empty = not "".join(["".join(comp) for comp in components]).strip() if empty is None else empty

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rep) and self.components == other.components

    def __hash__(self) -> int:
        return hash(self.components)

    def __repr__(self) -> str:
        return f"Rep(components={self.components!r})"

    def c(self, component: int, sub: int = 1) -> str:
        """Component `component`, subcomponent `sub`, stripped; "" when absent."""
        if component > len(self.components):
            return ""
        subs = self.components[component - 1]
        return subs[sub - 1].strip() if sub <= len(subs) else ""

    def encode(self) -> str:
        """Back to wire text with the standard separators (used to echo HD fields in the ACK)."""
        return "^".join("&".join(escape(s) for s in comp) for comp in self.components).rstrip("^&")


_EMPTY_REP = Rep(((),))


class Seg:
    """One segment. Field n is numbered as in the standard (MSH-1 is the field separator)."""

    __slots__ = ("_converted", "_leaf", "_pieces", "_reps", "name")

    def __init__(self, name: str, pieces: Sequence[Any], leaf: Callable[[str], str]) -> None:
        self.name = name
        self._pieces = pieces  # python-hl7's pieces of the segment: piece n is field n
        self._leaf = leaf
        self._converted: dict[int, tuple[Rep, ...]] = {}
        self._reps: dict[int, tuple[Rep, ...]] = {}

    def __repr__(self) -> str:
        return f"Seg({self.name!r}, {len(self._pieces) - 1} fields)"

    def __len__(self) -> int:
        """How many fields the segment has, field 0 (its name) included."""
        return len(self._pieces)

    def field(self, index: int) -> tuple[Rep, ...]:
        """Every repetition of field `index` (empty ones too), normalised on first use."""
        found = self._converted.get(index)
        if found is None:
            found = self._converted[index] = self._convert(index)
        return found

    def _convert(self, index: int) -> tuple[Rep, ...]:
        if index >= len(self._pieces):
            return ()
        if index == 0:
            return (Rep(((self.name,),)),)
        piece = self._pieces[index]
        if index <= 2 and self.name == "MSH":
            # MSH-1/MSH-2 are the separators themselves: never unescape them.
            return (Rep(((str(piece[0]),),)),)
        leaf = self._leaf
        reps: list[Rep] = []
        for item in (piece,) if isinstance(piece, str) else piece:
            if isinstance(item, str):
                if item == "":
                    reps.append(_EMPTY_FIELD_REP)
                else:
                    text = leaf(item)
                    reps.append(Rep(((text,),), not text.strip()))
            else:
                reps.append(
                    Rep(tuple((leaf(comp),) if isinstance(comp, str) else tuple(map(leaf, comp)) for comp in item))
                )
        return tuple(reps)

    def reps(self, field: int) -> tuple[Rep, ...]:
        """The non-empty repetitions of a field."""
        found = self._reps.get(field)
        if found is None:
            found = self._reps[field] = tuple([r for r in self.field(field) if not r.empty])
        return found

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


def _text(piece: Any, separators: str) -> str:
    """A piece of the tree back to its text, as python-hl7's containers print themselves."""
    if isinstance(piece, str):
        return piece
    return separators[0].join(_text(part, separators[1:]) for part in piece)


def from_hl7(message: Any, *, escapes: bool = True) -> Segments:
    """The view of a python-hl7 `Message` (from `hl7.parse`, with or without `ListFactory`).

    `escapes=False` says the text holds no escape character past MSH-2: fields are then
    normalised lazily, as the mapping reads them (nothing left to fail later).
    """
    esc = message.esc
    separators = message.separators  # segment, field, repetition, component, subcomponent

    def leaf(value: Any) -> str:
        text = value if type(value) is str else str(value)
        if text == _EXPLICIT_NULL:
            return ""
        return str(unescape(message, text)) if esc in text else text

    segments: list[Seg] = []
    for segment in message:
        head = segment[0]
        first = head if isinstance(head, str) else head[0]
        name = (first[0] if isinstance(head, str) else _text(first, separators[3:])).strip()
        seg = Seg(name, segment, leaf)
        if escapes:
            for index in range(len(segment)):
                seg.field(index)
        segments.append(seg)
    return Segments(tuple(segments))


_EMPTY_FIELD_REP = Rep((("",),))
