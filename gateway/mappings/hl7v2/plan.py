"""python-hl7's parse, with its parse plan's levels built once instead of once per piece.

`hl7.parse` splits the text with `hl7.parser._split`, which asks the plan for the next level's plan
(`_ParsePlan.next`) for every piece it splits: a new plan object, and a search of the separators,
about 120 times for a four-segment ADT message. The levels of a plan depend only on the separators,
so `_CachedPlan` (a subclass, as python-hl7's own `next` allows for) keeps each one once made and
the plans of each set of separators are kept across messages. The splitting itself is python-hl7's
`_split`, unchanged, so the tree is the one `hl7.parse(text, factory=factory)` builds (see
tests/mappings/hl7v2/test_hl7v2_plan.py). If a later python-hl7 no longer has these internals,
`parse_er7` is plain `hl7.parse`.
"""

from __future__ import annotations

from typing import Any

import hl7

try:
    from hl7.parser import _ParsePlan, _split, create_parse_plan
except ImportError:  # pragma: no cover - another python-hl7 layout: its public parse
    _ParsePlan = None

__all__ = ["parse_er7"]


if _ParsePlan is not None:

    class _CachedPlan(_ParsePlan):
        """A plan whose next level, and the separators it looks for, are worked out once."""

        _searched: str

        def __init__(self, seperator: str, separators: str, containers: Any, esc: str, factory: Any) -> None:
            super().__init__(seperator, separators, containers, esc, factory)
            self._searched = separators[separators.find(seperator) :]
            self._next: list[_CachedPlan | None] = []

        def next(self) -> _CachedPlan | None:
            # Made when first asked for, as python-hl7 does: a plan it cannot make (a separator
            # repeated in MSH-2) fails only a message that reaches that level.
            if not self._next:
                self._next.append(super().next())  # python-hl7's own; builds a `_CachedPlan`
            return self._next[0]

        def applies(self, text: str) -> bool:
            """As python-hl7's: whether the text holds this level's separator or a deeper one."""
            for separator in self._searched:  # noqa: SIM110 - a loop: any() of a generator costs 2x
                if separator in text:
                    return True
            return False

    _plans: dict[tuple[str, str, Any], _CachedPlan] = {}

    def parse_er7(text: str, factory: Any = hl7.Factory) -> Any:
        """`hl7.parse(text, factory=factory)` for a `str`: the same tree, and the same errors."""
        message = text.strip()
        plan = create_parse_plan(message, factory)
        key = (plan.separators, plan.esc, factory)
        cached = _plans.get(key)
        if cached is None:
            if len(_plans) >= 64:  # each sender uses one set of separators: this only stops a flood
                _plans.clear()
            cached = _plans[key] = _CachedPlan(plan.separator, plan.separators, plan.containers, plan.esc, factory)
        return _split(message, cached)

else:  # pragma: no cover

    def parse_er7(text: str, factory: Any = hl7.Factory) -> Any:
        """`hl7.parse(text, factory=factory)`."""
        return hl7.parse(text, factory=factory)
