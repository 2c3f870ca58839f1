"""Security labels in `meta.security`: which ones keep a resource hidden until something clears them.

Three kinds, configured in the policy file:
- confidentiality U/L/M/N: no restriction;
- confidentiality R and every sensitivity code (v3-ActCode: PSY, SDV, SEX, HIV, ETH …): hidden
  unless an agreement lists the label for that recipient, or a Consent permit provision names it;
- confidentiality V: hidden unless a Consent permit provision names V (agreements cannot).
Labels from systems listed as non-restricting (integrity, HTEST) are ignored; any other label
the policy does not know is withheld by default, because a label is as sensitive as its data.

Labels are never echoed into decisions or audit text: see `pdp.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.consent.policy import LabelPolicy
from gateway.types import JSON

Label = tuple[str, str]  # (system, code)


def labels_of(resource: JSON) -> frozenset[Label]:
    """All (system, code) pairs in meta.security."""
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return frozenset()
    found = set()
    for coding in meta.get("security") or ():
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            found.add((str(coding.get("system") or ""), coding["code"]))
    return frozenset(found)


def restricting(labels: Iterable[Label], policy: LabelPolicy) -> tuple[frozenset[Label], frozenset[Label]]:
    """Split labels into (clearable by agreement or consent, clearable by consent only)."""
    clearable: set[Label] = set()
    consent_only: set[Label] = set()
    for system, code in labels:
        if system == policy.confidentiality_system:
            if code in policy.consent_only_confidentiality:
                consent_only.add((system, code))
            elif code not in policy.unrestricted_confidentiality:
                clearable.add((system, code))
        elif system == policy.sensitivity_system and code in policy.sensitivity_codes:
            clearable.add((system, code))
        elif system in policy.non_restricting_systems:
            continue
        elif policy.withhold_unknown:
            clearable.add((system, code))
    return frozenset(clearable), frozenset(consent_only)


def codings_to_labels(codings: Iterable[Any]) -> frozenset[Label]:
    """Coding JSON (as in provision.securityLabel or an agreement) to labels; system may be empty."""
    return frozenset(
        (str(c.get("system") or ""), c["code"])
        for c in codings
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    )


def label_in(label: Label, allowed: Iterable[Label]) -> bool:
    """True when `allowed` holds the label; an allowed entry without a system matches on code."""
    system, code = label
    return any(code == a_code and (not a_system or a_system == system) for a_system, a_code in allowed)
