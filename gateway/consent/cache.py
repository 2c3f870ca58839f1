"""Content-hash keys for single decisions (for callers holding the inputs themselves).

The enforcement point's cache is `decision_cache.py`: class-level keys built from stored versions
read with the inputs, so it never hashes Consent content on the request path.

The key hashes everything a decision depends on except the clock: the caller (client,
organisation, role, scopes, purpose, break-glass reason), the person, the policy file version,
the compartment version and a content fingerprint of each Consent and agreement. Any change to
a Consent, an agreement or a client's registration therefore yields a new key; old entries just
age out. Expire entries at `Decision.valid_until` (period boundaries, break-glass expiry) or
sooner.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from gateway.auth.context import AccessContext
from gateway.consent.agreements import Agreement, fingerprint
from gateway.consent.compartment import Compartment
from gateway.consent.policy import PolicyConfig
from gateway.types import JSON

KEY_PREFIX = "pdp:v1:"


def decision_cache_key(
    ctx: AccessContext,
    patient_id: str,
    *,
    consents: Iterable[JSON],
    agreements: Iterable[Agreement],
    policy: PolicyConfig,
    compartment: Compartment | None = None,
    resource: JSON | None = None,
) -> str:
    """A Redis-safe key `pdp:v1:<sha256>`; pass `resource` to key a single resource's decision."""
    resource_part = None
    if resource is not None:
        resource_part = [resource.get("resourceType"), resource.get("id"), fingerprint(resource)]
    material = {
        "client": [
            ctx.client_id,
            ctx.organization,
            ctx.role,
            sorted(ctx.scopes),
            ctx.purpose_of_use,
            ctx.break_glass_reason,
            ctx.is_system,
        ],
        "patient": patient_id,
        "policy": policy.version,
        "compartment": compartment.version if compartment else None,
        "consents": sorted(fingerprint(c) for c in consents),
        "agreements": sorted(a.fingerprint for a in agreements),
        "resource": resource_part,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return KEY_PREFIX + digest
