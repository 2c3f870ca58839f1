"""Purpose of use, as stated by the caller on each request (HL7 v3 PurposeOfUse codes).

Headers (documented for integrators):

- `X-Purpose-Of-Use: <code>` - one code from `PURPOSES`; absent means `TREAT` (direct care).
- `X-Break-Glass-Reason: <text>` - required, non-blank, when the purpose is `BTG`.

Whether a purpose (or break-glass) is *permitted* is the consent engine's decision; this module
only reads and checks what was stated. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.auth.context import BREAK_GLASS, TREATMENT
from gateway.fhir.errors import forbidden

PURPOSE_HEADER = "x-purpose-of-use"
REASON_HEADER = "x-break-glass-reason"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
MAX_REASON_LENGTH = 500

# The v3 PurposeOfUse codes the gateway accepts from callers.
PURPOSES: dict[str, str] = {
    "TREAT": "treatment",
    "ETREAT": "emergency treatment",
    "BTG": "break the glass",
    "COC": "coordination of care",
    "CAREMGT": "care management",
    "PATRQT": "patient requested",
    "HOPERAT": "healthcare operations",
    "PUBHLTH": "public health",
    "HRESCH": "healthcare research",
}


def purpose_from_headers(headers: Mapping[str, str]) -> tuple[str, str | None]:
    """(purpose code, break-glass reason) from lower-cased request headers.

    Raises FhirError 403 for an unknown purpose, for BTG without a reason, or for a reason
    given without BTG (a reason with any other purpose is almost certainly a client mistake).
    """
    purpose = (headers.get(PURPOSE_HEADER) or TREATMENT).strip().upper()
    if purpose not in PURPOSES:
        raise forbidden(f"purpose of use {purpose[:16]!r} is not recognised")
    reason = (headers.get(REASON_HEADER) or "").strip()
    if purpose == BREAK_GLASS:
        if not reason:
            raise forbidden(f"break-glass needs a reason in the {REASON_HEADER} header")
        if len(reason) > MAX_REASON_LENGTH:
            raise forbidden(f"break-glass reason is longer than {MAX_REASON_LENGTH} characters")
        return purpose, reason
    if reason:
        raise forbidden(f"{REASON_HEADER} is only accepted with purpose of use {BREAK_GLASS}")
    return purpose, None
