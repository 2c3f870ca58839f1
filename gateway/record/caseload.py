"""Caseloads: how many people each case manager holds, and how many of them are high risk.

A case manager with too many people, or too many very unwell people, cannot do the proactive
work case management depends on; the warning is for the team leader who allocates new people.
Pure: EpisodeOfCare resources and the set of high-risk Patient ids (from case-finding) in.

An episode counts when it is `active`, of a case-managed type (`CASE_MANAGED_EPISODE_TYPES`) and
has a `careManager` (a missing CareTeam does not take it off anyone's caseload). Warnings fire
when a limit is passed, i.e. strictly above it: 50 people is full, 51 is over.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from fractions import Fraction

from gateway.alerts.registry import ref_id, relative_ref
from gateway.codes import CASE_MANAGED_EPISODE_TYPES, EPISODE_TYPE_SYSTEM
from gateway.types import JSON

OVER_LIMIT = "caseload-over-limit"
HIGH_RISK_SHARE = "high-risk-share-over-limit"


@dataclass(frozen=True)
class CaseloadPolicy:
    limit: int = 50
    high_risk_share: float = 0.15


@dataclass(frozen=True)
class Caseload:
    care_manager: str
    care_manager_display: str | None
    active: int
    high_risk: int
    warnings: tuple[str, ...]

    @property
    def high_risk_share(self) -> float:
        return self.high_risk / self.active if self.active else 0.0


def _counts(episode: JSON) -> bool:
    if episode.get("resourceType") != "EpisodeOfCare" or episode.get("status") != "active":
        return False
    return any(
        c.get("system") == EPISODE_TYPE_SYSTEM and c.get("code") in CASE_MANAGED_EPISODE_TYPES
        for t in episode.get("type") or []
        for c in t.get("coding") or []
    )


def caseloads(
    episodes: Iterable[JSON],
    high_risk_patient_ids: Collection[str],
    policy: CaseloadPolicy = CaseloadPolicy(),
) -> list[Caseload]:
    """One `Caseload` per care manager, largest first; a person counts once per care manager."""
    high = set(high_risk_patient_ids)
    people: dict[str, set[str]] = {}
    names: dict[str, str | None] = {}
    for episode in episodes:
        manager = relative_ref((episode.get("careManager") or {}).get("reference"))
        patient = ref_id((episode.get("patient") or {}).get("reference"))
        if not _counts(episode) or not manager or not patient:
            continue
        people.setdefault(manager, set()).add(patient)
        names[manager] = names.get(manager) or (episode.get("careManager") or {}).get("display")
    result: list[Caseload] = []
    for manager, patients in people.items():
        active, high_risk = len(patients), len(patients & high)
        warnings: list[str] = []
        if active > policy.limit:
            warnings.append(OVER_LIMIT)
        # Exact comparison: 3 of 20 is exactly 15%, which is not over a 15% limit.
        if active and Fraction(high_risk, active) > Fraction(str(policy.high_risk_share)):
            warnings.append(HIGH_RISK_SHARE)
        result.append(Caseload(manager, names.get(manager), active, high_risk, tuple(warnings)))
    return sorted(result, key=lambda c: (-c.active, c.care_manager))
