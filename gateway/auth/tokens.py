"""Access tokens: JWTs (RFC 9068 `at+jwt`) signed with the gateway's own key, valid ≤ 300 s.

Self-contained so that any gateway process holding the same key can check them without a shared
session store. Pure: `now` is passed in.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from gateway.auth.keys import SIGNING_ALG, SigningKey
from gateway.settings import Settings

ACCESS_TOKEN_SECONDS = 300
TOKEN_TYPE = "at+jwt"
MAX_TOKEN_BYTES = 8 * 1024
CLOCK_SKEW_SECONDS = 30

_REGISTRY = jws.JWSRegistry(algorithms=[SIGNING_ALG])


def issuer(settings: Settings) -> str:
    """The authorization server's identifier (the gateway's public base URL)."""
    return settings.base_url.rstrip("/")


def token_url(settings: Settings) -> str:
    """Where the token endpoint is mounted; client assertions must name exactly this as `aud`."""
    return issuer(settings) + "/auth/token"


class TokenError(ValueError):
    """An access token that must not be honoured (bad signature, expired, wrong audience…)."""


@dataclass(frozen=True)
class AccessClaims:
    client_id: str
    organization: str | None
    role: str | None
    scopes: frozenset[str]
    expires_at: int
    jti: str
    patient: str | None = None


def issue_access_token(
    key: SigningKey,
    *,
    client_id: str,
    organization: str,
    role: str,
    scopes: list[str],
    issuer: str,
    audience: str,
    now: float,
    lifetime: int = ACCESS_TOKEN_SECONDS,
    patient: str | None = None,
) -> str:
    """A signed access token carrying who the client is (organisation, role), its granted scopes and,
    when its scopes include `patient/` ones, the patient context they are confined to."""
    lifetime = min(lifetime, ACCESS_TOKEN_SECONDS)
    issued = int(now)
    claims = {
        "iss": issuer,
        "sub": client_id,
        "aud": audience,
        "client_id": client_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "scope": " ".join(scopes),
        "organization": organization,
        "role": role,
    }
    if patient is not None:
        claims["patient"] = patient
    header = {"alg": SIGNING_ALG, "typ": TOKEN_TYPE, "kid": key.kid}
    return jws.serialize_compact(header, json.dumps(claims, separators=(",", ":")), key.key, registry=_REGISTRY)


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenError(f"token {name} missing")
    return value


def verify_access_token(token: str, key: SigningKey, *, issuer: str, audience: str, now: float) -> AccessClaims:
    """Check signature (ES256 only, our kid, typ at+jwt), issuer, audience and time. Raises TokenError."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token too large")
    try:
        verified = jws.deserialize_compact(token, key.key, registry=_REGISTRY)
        header = verified.headers()
        claims = json.loads(verified.payload or b"")
    except (JoseError, ValueError) as exc:
        raise TokenError("token signature is not valid") from exc
    if header.get("typ") != TOKEN_TYPE or header.get("kid") != key.kid:
        raise TokenError("not an access token of this gateway")
    if not isinstance(claims, dict):
        raise TokenError("token claims are not an object")
    if claims.get("iss") != issuer or claims.get("aud") != audience:
        raise TokenError("token was not issued for this server")
    exp = _int_claim(claims, "exp")
    if exp <= now:
        raise TokenError("token has expired")
    if _int_claim(claims, "nbf") > now + CLOCK_SKEW_SECONDS:
        raise TokenError("token is not valid yet")
    client_id, scope = claims.get("client_id"), claims.get("scope")
    if not isinstance(client_id, str) or not client_id or not isinstance(scope, str):
        raise TokenError("token lacks client_id or scope")
    org, role, patient = claims.get("organization"), claims.get("role"), claims.get("patient")
    if patient is not None and (not isinstance(patient, str) or not patient):
        raise TokenError("token patient claim is malformed")
    return AccessClaims(
        client_id=client_id,
        organization=org if isinstance(org, str) else None,
        role=role if isinstance(role, str) else None,
        scopes=frozenset(scope.split()),
        expires_at=exp,
        jti=str(claims.get("jti", "")),
        patient=patient,
    )
