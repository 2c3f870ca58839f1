"""Ready-made demo clients, one per demo organisation (fixtures/demo/01-core.json), with secrets.

Secrets are derived from a per-deployment seed (HMAC), so a restart prints the same working
credentials without ever storing them in clear, and another deployment's demo secrets differ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from gateway.auth.client_secrets import verify_secret
from gateway.auth.clients import ClientRepository


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    name: str
    organization: str
    role: str
    scope: str


# Roles match profiles/policy/default-policy.json (break_glass.roles names who may break the glass).
DEMO_CLIENTS: tuple[DemoClient, ...] = (
    DemoClient(
        "demo-hospital",
        "Riverside Hospitals PAS/EPR (demo)",
        "Organization/trust-rxx",
        "clinician",
        "system/Patient.cruds system/Encounter.cruds system/EpisodeOfCare.rs system/Flag.rs system/Subscription.cruds",
    ),
    DemoClient(
        "demo-council",
        "Westshire Council adult social care (demo)",
        "Organization/la-e09",
        "social-worker",
        "system/*.rs system/Patient.cu system/QuestionnaireResponse.cu system/CarePlan.cu system/CareTeam.cu "
        "system/ServiceRequest.cu system/EpisodeOfCare.cu",
    ),
    DemoClient(
        "demo-community",
        "Westshire Community Health (demo)",
        "Organization/community-rcc",
        "community-nurse",
        "system/*.rs system/Patient.cu system/Encounter.cu system/ServiceRequest.cu system/CareTeam.cu",
    ),
    DemoClient(
        "demo-out-of-hours",
        "Westshire Out-of-Hours and 111 (demo)",
        "Organization/ooh-nx1",
        "emergency-clinician",
        "system/Patient.rs system/Encounter.cruds system/Flag.rs",
    ),
    DemoClient(
        "demo-case-management",
        "Westshire case-management app (demo)",
        "Organization/case-mgmt",
        "case-manager",
        "system/*.cruds",
    ),
)


def demo_secret(seed: bytes, client_id: str) -> str:
    digest = hmac.new(seed, b"demo-client:" + client_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def demo_clients(clients: ClientRepository, *, seed: bytes, token_endpoint: str | None = None) -> list[dict[str, Any]]:
    """Create the demo clients if missing (or re-key them if the seed changed); return their credentials.

    Disabled demo clients stay disabled and are left out of the result.
    """
    out: list[dict[str, Any]] = []
    for demo in DEMO_CLIENTS:
        secret = demo_secret(seed, demo.client_id)
        existing = clients.get(demo.client_id)
        if existing is None:
            existing = clients.add(
                client_id=demo.client_id,
                name=demo.name,
                organization=demo.organization,
                role=demo.role,
                scopes=demo.scope,
                secret=secret,
            )
        elif existing.disabled:
            continue
        elif not verify_secret(secret, existing.secret_hash):
            clients.set_secret(demo.client_id, secret)
        item = existing.public()
        item["client_secret"] = secret
        if token_endpoint:
            item["token_endpoint"] = token_endpoint
        out.append(item)
    return out
