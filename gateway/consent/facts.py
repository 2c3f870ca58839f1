"""What a decision reads from one resource: its class (type, people, source, category, labels, profiles).

Resources of one class are decided alike unless a Consent of their people reads resource
content (`consents.is_class_level`), so the PDP decides a page once per class and the decision
cache keys on the class. A stored version never changes, so its facts can be remembered per
(type, id, version) and a cached decision needs no JSON parse at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.consent.labels import Label


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything a class-level decision depends on from the resource side; hashable."""

    rtype: str
    patients: tuple[str, ...]  # sorted Patient ids whose policy governs the resource
    sources: frozenset[str]  # `Organization/<id>` from the source-organization tag
    categories: frozenset[Label]
    labels: frozenset[Label]  # meta.security
    profiles: frozenset[str]  # meta.profile (a Consent `class` may name a profile)
    opted_out: bool | None = None  # a Patient's own national opt-out flag (None for other types)

    def material(self) -> list[object]:
        """A JSON-able, order-independent form (for keys shared between processes)."""
        return [
            self.rtype,
            list(self.patients),
            sorted(self.sources),
            sorted(map(list, self.categories)),
            sorted(map(list, self.labels)),
            sorted(self.profiles),
            self.opted_out,
        ]
