"""What the policy decision point answers: permit or deny, why, and what the caller must do next."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.types import JSON

# Obligations: things the enforcement point must do when it acts on the decision.
AUDIT_SECURITY_ALERT = "audit-security-alert"  # write the AuditEvent as DCM 110113 Security Alert
NOTIFY_CASE_MANAGER = "notify-case-manager"  # tell the person's case manager (break-glass)

# Reason codes. Never carry label codes or data values: a reason may reach an audit trail that
# the person or an auditor reads, and labels are as sensitive as the data they mark.
SYSTEM_CONTEXT = "system-context"
NON_PATIENT = "non-patient-resource"
NON_PATIENT_WITHHELD = "non-patient-resource-withheld"
NO_AGREEMENT = "no-agreement"
OWN_SOURCE = "own-source"
AGREEMENT = "agreement"
CONSENT_PERMIT = "consent-permit"
CONSENT_DENY = "consent-deny"
DEFAULT_PERMIT = "default-policy-permit"
DEFAULT_DENY = "default-policy-deny"
NATIONAL_OPT_OUT = "national-opt-out"
OPT_OUT_UNKNOWN = "opt-out-status-unknown"
WITHHELD = "sensitive-data-withheld"
BREAK_GLASS = "break-glass"
BREAK_GLASS_REFUSED = "break-glass-refused"


@dataclass(frozen=True)
class Decision:
    """The answer for one resource.

    Enforcement points must answer every deny exactly as if the resource did not exist (same
    status, same body, not counted in `total`). `reasons` and `policy_ids` are for audit only.
    `valid_until` is the earliest instant a period in the inputs changes the answer: cache no longer.
    """

    permit: bool
    reasons: tuple[str, ...]
    policy_ids: tuple[str, ...] = ()
    obligations: frozenset[str] = frozenset()
    patients: tuple[str, ...] = ()
    break_glass: bool = False
    expires_at: datetime | None = None
    valid_until: datetime | None = None

    @property
    def deny(self) -> bool:
        return not self.permit


def distinct(decisions: list[Decision]) -> Iterable[Decision]:
    """Each decision object once, in first-seen order: a page or record of hundreds of rows shares a
    few (one per class), found by identity in C-level passes."""
    return dict(zip(map(id, decisions), decisions, strict=True)).values()


@dataclass(frozen=True)
class FilterResult:
    """A search page after policy: `permitted` keeps input order; `decisions` is parallel to the input."""

    permitted: list[JSON]
    decisions: list[Decision]
    obligations: frozenset[str] = field(default_factory=frozenset)

    @property
    def hidden_count(self) -> int:
        return sum(1 for d in self.decisions if d.deny)
