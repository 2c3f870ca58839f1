"""The resource-server side: turn a request's bearer token and purpose headers into an AccessContext.

`authenticate` is the one function every FHIR request goes through (wired as
`Services.authenticate`). It checks the token (signature, expiry, audience, issuer), optionally
that the client is still enabled, and reads the stated purpose of use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from starlette.requests import Request

from gateway.auth.context import AccessContext
from gateway.auth.keys import SigningKey
from gateway.auth.purpose import purpose_from_headers
from gateway.auth.tokens import AccessClaims, TokenError, issuer, verify_access_token
from gateway.auth.verified_tokens import VerifiedTokens, Verify
from gateway.fhir.errors import unauthorized
from gateway.logging import get_logger
from gateway.settings import Settings

log = get_logger("gateway.auth")

ClientCheck = Callable[[str], bool]


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token from `Authorization: Bearer …`; FhirError 401 when absent or malformed."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("a bearer token is required")
    return token.strip()


def authenticate(
    request_headers: Mapping[str, str],
    settings: Settings,
    *,
    key: SigningKey,
    client_active: ClientCheck | None = None,
    now: float | None = None,
    verify: Verify | None = None,
) -> AccessContext:
    """The caller of this request. Raises FhirError 401 (no/invalid/expired token, disabled client)
    or 403 (unknown purpose of use, break-glass without reason).

    `client_active`, when given, is asked whether the client is still enabled, so disabling a
    client takes effect at once rather than when its last token expires. `verify` replaces the
    full token check (the authenticator puts a cache of verified tokens there).
    """
    headers = {k.lower(): v for k, v in request_headers.items()}
    token = bearer_token(headers)
    at = time.time() if now is None else now
    try:
        claims = (verify if verify is not None else _verifier(settings, key))(token, at)
    except TokenError as exc:
        log.info("auth.token_refused", reason=str(exc))
        raise unauthorized("the access token is not valid") from exc
    if client_active is not None and not client_active(claims.client_id):
        log.info("auth.client_disabled", client_id=claims.client_id)
        raise unauthorized("the access token is not valid")
    purpose, reason = purpose_from_headers(headers)
    # `patient/` scopes mean nothing without a patient to confine them to: they grant nothing then.
    scopes = claims.scopes if claims.patient else frozenset(s for s in claims.scopes if not s.startswith("patient/"))
    return AccessContext(
        client_id=claims.client_id,
        organization=claims.organization,
        role=claims.role,
        scopes=scopes,
        purpose_of_use=purpose,
        break_glass_reason=reason,
        patient=claims.patient,
    )


def _verifier(settings: Settings, key: SigningKey) -> Verify:
    iss, aud = issuer(settings), settings.fhir_base

    def verify(token: str, now: float) -> AccessClaims:
        return verify_access_token(token, key, issuer=iss, audience=aud, now=now)

    return verify


def verified_tokens(settings: Settings, key: SigningKey) -> VerifiedTokens:
    """The token check with its memory of verified tokens (share one between authenticators)."""
    return VerifiedTokens(_verifier(settings, key))


def authenticator(
    settings: Settings,
    key: SigningKey,
    *,
    client_active: ClientCheck | None = None,
    clock: Callable[[], float] = time.time,
    verified: VerifiedTokens | None = None,
) -> Callable[[Request], AccessContext]:
    """`Request -> AccessContext`: fits `Services.authenticate` and works as a FastAPI dependency
    (`Depends(authenticator(settings, key))`). Without `client_active` the client's registration
    is not checked: the caller must check it itself (see `Services.authenticate_token`)."""

    verified = verified or verified_tokens(settings, key)

    def dependency(request: Request) -> AccessContext:
        return authenticate(
            request.headers, settings, key=key, client_active=client_active, now=clock(), verify=verified
        )

    return dependency
