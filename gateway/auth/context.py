"""Who is asking: the per-request access context every read and write path carries.

Built once per request by `gateway/auth` from the bearer token; read by `gateway/consent`
(may they see this?) and `gateway/audit` (who saw what). Internal work (intake, alert
delivery) runs as a `system_context`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TREATMENT = "TREAT"
BREAK_GLASS = "BTG"


@dataclass(frozen=True)
class AccessContext:
    """The caller of one request.

    `scopes` holds the granted SMART scope strings (already narrowed to what the client was
    registered with). `organization` is a reference such as `Organization/trust-a`.
    `patient` is the SMART patient context (a Patient id): `patient/` scopes reach only that
    person's compartment (see `gateway.fhir.patient_context`).
    """

    client_id: str
    organization: str | None = None
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    purpose_of_use: str = TREATMENT
    break_glass_reason: str | None = None
    is_system: bool = False
    patient: str | None = None

    @property
    def is_break_glass(self) -> bool:
        return self.purpose_of_use == BREAK_GLASS


def system_context(component: str) -> AccessContext:
    """The gateway acting for itself (intake, alerts): trusted, audited under its component name."""
    return AccessContext(client_id=f"gateway:{component}", scopes=frozenset({"system/*.cruds"}), is_system=True)
