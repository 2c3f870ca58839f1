"""SMART Backend Services client assertions (RFC 7523 `private_key_jwt`): read, pick key, verify.

Pure: keys and `now` are passed in. Every refusal is `invalid_client`, and the checks run in an
order that spends no signature work (and burns no `jti`) on a token that is already refused:

1. `read_assertion` - size, shape, header: `alg` must be RS384 or ES384 (so `none` and HS256
   "signed" with the public key are refused before any key is touched); no embedded `jwk`,
   no `x5u`/`x5c`/`crit`; a `kid` is required; `iss` = `sub`.
2. `check_jku` - a `jku` header is accepted only when it is the client's registered JWKS URL.
3. `select_key` - the registered key with that `kid`, of the type the `alg` needs.
4. `verify_assertion` - signature (algorithms pinned), then claims: `iss` = `sub` = client_id,
   `aud` = token URL, `exp` present, not past and at most 5 minutes ahead, `nbf`/`iat` not in
   the future, `jti` present.

The caller checks `jti` replay last, after the signature, so nobody can burn another client's jti.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, RSAKey

from gateway.auth.errors import invalid_client

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS: tuple[str, ...] = ("RS384", "ES384")
MAX_ASSERTION_BYTES = 8 * 1024
MAX_LIFETIME_SECONDS = 300
# Clocks of client and gateway disagree by a few seconds in practice; allow this much either way.
CLOCK_SKEW_SECONDS = 30
MAX_JTI_LENGTH = 256
_REFUSED_HEADERS = ("jwk", "x5u", "x5c", "crit")

_REGISTRY = jws.JWSRegistry(algorithms=list(ALGORITHMS))
_REGISTRY.max_header_length = 2048  # room for a long registered jku


@dataclass(frozen=True)
class Assertion:
    """A client assertion whose header and claims have been read but NOT yet verified."""

    raw: str
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def client_id(self) -> str:
        return str(self.claims["iss"])

    @property
    def kid(self) -> str:
        return str(self.header["kid"])


def _segment(text: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError as exc:
        raise invalid_client("client assertion is not a JWT") from exc
    if not isinstance(data, dict):
        raise invalid_client("client assertion is not a JWT")
    return data


def read_assertion(raw: str) -> Assertion:
    """Decode the header and claims (unverified) and refuse anything unacceptable on its face."""
    if len(raw.encode("utf-8")) > MAX_ASSERTION_BYTES:
        raise invalid_client(f"client assertion is larger than {MAX_ASSERTION_BYTES} bytes")
    parts = raw.split(".")
    if len(parts) != 3 or not all(parts):
        raise invalid_client("client assertion must be a signed JWT (compact JWS)")
    header, claims = _segment(parts[0]), _segment(parts[1])
    if header.get("alg") not in ALGORITHMS:
        raise invalid_client(f"client assertion alg must be one of {', '.join(ALGORITHMS)}")
    for name in _REFUSED_HEADERS:
        if name in header:
            raise invalid_client(f"client assertion header {name!r} is not accepted")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        raise invalid_client("client assertion header needs a 'kid'")
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not iss or iss != sub:
        raise invalid_client("client assertion iss and sub must both be the client_id")
    return Assertion(raw, header, claims)


def check_jku(assertion: Assertion, registered_url: str | None) -> None:
    """A `jku` header may only name the JWKS URL the client registered."""
    jku = assertion.header.get("jku")
    if jku is not None and (registered_url is None or jku != registered_url):
        raise invalid_client("client assertion jku is not the registered JWKS URL")


def select_key(assertion: Assertion, keys: KeySet) -> Key:
    """The registered key named by `kid`, of the type `alg` needs; invalid_client when there is none."""
    matches = [key for key in keys if key.kid == assertion.kid]
    if not matches:
        raise invalid_client("client assertion kid is not a registered key")
    key = matches[0]
    alg = assertion.header["alg"]
    if alg == "RS384" and isinstance(key, RSAKey):
        return key
    if alg == "ES384" and isinstance(key, ECKey) and key.curve_name == "P-384":
        return key
    raise invalid_client("client assertion alg does not fit the registered key")


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_client(f"client assertion {name} must be a number")
    return float(value)


def verify_assertion(assertion: Assertion, key: Key, *, client_id: str, token_url: str, now: float) -> dict[str, Any]:
    """Verify the signature and the claims; returns the verified claims. Raises OAuthError(invalid_client)."""
    try:
        verified = jws.deserialize_compact(assertion.raw, key, registry=_REGISTRY)
    except JoseError as exc:
        raise invalid_client("client assertion signature is not valid") from exc
    try:
        claims = json.loads(verified.payload or b"")
    except ValueError as exc:
        raise invalid_client("client assertion claims are not JSON") from exc
    if not isinstance(claims, dict):
        raise invalid_client("client assertion claims are not a JSON object")
    _check_claims(claims, client_id=client_id, token_url=token_url, now=now)
    return claims


def _check_claims(claims: dict[str, Any], *, client_id: str, token_url: str, now: float) -> None:
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise invalid_client("client assertion iss and sub must both be the client_id")
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    if aud != token_url:
        raise invalid_client("client assertion aud must be the token endpoint URL")
    exp = _number(claims, "exp")
    if exp is None:
        raise invalid_client("client assertion needs exp")
    if exp + CLOCK_SKEW_SECONDS <= now:
        raise invalid_client("client assertion has expired")
    if exp > now + MAX_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise invalid_client("client assertion exp is more than 5 minutes ahead")
    for name in ("nbf", "iat"):
        value = _number(claims, name)
        if value is not None and value > now + CLOCK_SKEW_SECONDS:
            raise invalid_client(f"client assertion {name} is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise invalid_client("client assertion needs a jti")


def replay_ttl(claims: dict[str, Any], now: float) -> float:
    """How long the jti must be remembered: until the assertion could no longer be accepted."""
    return max(float(claims["exp"]) + CLOCK_SKEW_SECONDS - now, 1.0)
