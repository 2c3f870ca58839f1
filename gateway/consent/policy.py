"""The configured default policy: what happens where no Consent speaks, and how labels are read.

It is data (`profiles/policy/default-policy.json`), loaded once at start-up into a frozen
`PolicyConfig`; its `version` is part of every decision cache key, so editing the file and
restarting invalidates cached decisions.

Purposes of use are v3-ActReason codes. `implies` is a small is-a table (BTG is a kind of
ETREAT, which is a kind of TREAT): a request for BTG is also "for" ETREAT and TREAT, so a
provision or agreement naming TREAT covers it. The table is closed transitively on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.paths import PROFILES_DIR
from gateway.types import JSON

POLICY_FILE = PROFILES_DIR / "policy" / "default-policy.json"


class PolicyConfigError(ValueError):
    """The policy file is malformed; the message names the offending key."""


@dataclass(frozen=True)
class LabelPolicy:
    confidentiality_system: str
    unrestricted_confidentiality: frozenset[str]
    consent_only_confidentiality: frozenset[str]
    sensitivity_system: str
    sensitivity_codes: frozenset[str]
    non_restricting_systems: frozenset[str]
    withhold_unknown: bool


@dataclass(frozen=True)
class BreakGlassPolicy:
    roles: frozenset[str]
    ttl: timedelta
    withheld_labels: frozenset[tuple[str, str]]
    overrides_consent_deny: bool


@dataclass(frozen=True)
class PolicyConfig:
    version: str
    purpose_system: str
    direct_care_purposes: frozenset[str]
    default_permit_purposes: frozenset[str]
    implies: dict[str, frozenset[str]]
    labels: LabelPolicy
    non_patient_withheld_types: frozenset[str]
    own_source_visible: bool
    read_actions: frozenset[str]
    break_glass: BreakGlassPolicy
    raw: JSON = field(default_factory=dict, compare=False, repr=False)

    def purposes_of(self, purpose: str) -> frozenset[str]:
        """The requested purpose and every purpose it is a kind of."""
        return frozenset({purpose}) | self.implies.get(purpose, frozenset())

    def is_direct_care(self, purpose: str) -> bool:
        return bool(self.purposes_of(purpose) & self.direct_care_purposes)


def _get(data: JSON, dotted: str) -> Any:
    node: Any = data
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise PolicyConfigError(f"policy: missing key {dotted!r}")
        node = node[key]
    return node


def _codes(data: JSON, dotted: str) -> frozenset[str]:
    value = _get(data, dotted)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyConfigError(f"policy: {dotted!r} must be a list of codes")
    return frozenset(value)


def _closure(direct: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    closed: dict[str, frozenset[str]] = {}
    for start in direct:
        seen: set[str] = set()
        todo = list(direct[start])
        while todo:
            code = todo.pop()
            if code not in seen and code != start:
                seen.add(code)
                todo.extend(direct.get(code, []))
        closed[start] = frozenset(seen)
    return closed


def parse_policy(data: JSON) -> PolicyConfig:
    """Validate and freeze the policy JSON. Raises PolicyConfigError naming the bad key."""
    version = _get(data, "version")
    if not isinstance(version, str) or not version:
        raise PolicyConfigError("policy: 'version' must be a non-empty string")
    implies = _get(data, "purposes.implies")
    if not isinstance(implies, dict) or not all(isinstance(v, list) for v in implies.values()):
        raise PolicyConfigError("policy: 'purposes.implies' must map a code to a list of codes")
    unknown = _get(data, "labels.unknown_labels")
    if unknown not in ("withhold", "ignore"):
        raise PolicyConfigError("policy: 'labels.unknown_labels' must be 'withhold' or 'ignore'")
    ttl = _get(data, "break_glass.ttl_minutes")
    if not isinstance(ttl, int) or not 1 <= ttl <= 24 * 60:
        raise PolicyConfigError("policy: 'break_glass.ttl_minutes' must be 1..1440")
    withheld: set[tuple[str, str]] = set()
    for item in _get(data, "break_glass.withheld_labels"):
        if not isinstance(item, dict) or not item.get("system") or not item.get("code"):
            raise PolicyConfigError("policy: 'break_glass.withheld_labels' entries need system and code")
        withheld.add((item["system"], item["code"]))
    labels = LabelPolicy(
        confidentiality_system=str(_get(data, "labels.confidentiality_system")),
        unrestricted_confidentiality=_codes(data, "labels.unrestricted_confidentiality"),
        consent_only_confidentiality=_codes(data, "labels.consent_only_confidentiality"),
        sensitivity_system=str(_get(data, "labels.sensitivity_system")),
        sensitivity_codes=_codes(data, "labels.sensitivity_codes"),
        non_restricting_systems=_codes(data, "labels.non_restricting_systems"),
        withhold_unknown=unknown == "withhold",
    )
    direct_care = _codes(data, "purposes.direct_care")
    default_permit = _codes(data, "purposes.default_permit")
    closure = _closure(implies)
    return PolicyConfig(
        version=version,
        purpose_system=str(_get(data, "purposes.system")),
        direct_care_purposes=direct_care,
        default_permit_purposes=default_permit,
        implies=closure,
        labels=labels,
        non_patient_withheld_types=_codes(data, "non_patient.withheld_types"),
        own_source_visible=bool(_get(data, "own_source_visible")),
        read_actions=_codes(data, "read_actions"),
        break_glass=BreakGlassPolicy(
            roles=_codes(data, "break_glass.roles"),
            ttl=timedelta(minutes=ttl),
            withheld_labels=frozenset(withheld),
            overrides_consent_deny=bool(_get(data, "break_glass.overrides_consent_deny")),
        ),
        raw=data,
    )


def load_policy(path: Path = POLICY_FILE) -> PolicyConfig:
    return parse_policy(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_policy() -> PolicyConfig:
    """The shipped policy file, loaded once."""
    return load_policy()
