"""The cache of verified access tokens: a hit skips the signature check, never outlives the token,
and never remembers a refusal."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.auth.keys import SigningKey
from gateway.auth.resource_server import authenticate
from gateway.auth.tokens import AccessClaims, TokenError, issue_access_token, issuer, verify_access_token
from gateway.auth.verified_tokens import VerifiedTokens
from gateway.fhir.errors import FhirError
from gateway.settings import Settings


class CountingVerifier:
    """The real verifier, counting how often it runs."""

    def __init__(self, key: SigningKey, settings: Settings) -> None:
        self.key, self.settings, self.calls = key, settings, 0

    def __call__(self, token: str, now: float) -> AccessClaims:
        self.calls += 1
        return verify_access_token(
            token, self.key, issuer=issuer(self.settings), audience=self.settings.fhir_base, now=now
        )


def token(key: SigningKey, kit: Any, **changes: Any) -> str:
    values: dict[str, Any] = {
        "client_id": "app",
        "organization": "Organization/case-mgmt",
        "role": "case-manager",
        "scopes": ["system/Patient.rs"],
        "issuer": kit.base_url,
        "audience": kit.fhir_base,
        "now": kit.now,
    }
    values.update(changes)
    return issue_access_token(key, **values)


def auth(tok: str, settings: Settings, key: SigningKey, verify: VerifiedTokens, now: float) -> str:
    ctx = authenticate({"Authorization": f"Bearer {tok}"}, settings, key=key, now=now, verify=verify)
    return ctx.client_id


def test_a_token_is_verified_once_then_served_from_the_cache(
    signing_key: SigningKey, auth_settings: Settings, kit: Any
) -> None:
    verifier = CountingVerifier(signing_key, auth_settings)
    cache = VerifiedTokens(verifier)
    tok = token(signing_key, kit)
    assert [auth(tok, auth_settings, signing_key, cache, kit.now + i) for i in range(5)] == ["app"] * 5
    assert verifier.calls == 1


def test_a_cached_token_still_expires(signing_key: SigningKey, auth_settings: Settings, kit: Any) -> None:
    cache = VerifiedTokens(CountingVerifier(signing_key, auth_settings))
    tok = token(signing_key, kit, lifetime=60)
    auth(tok, auth_settings, signing_key, cache, kit.now + 1)
    with pytest.raises(FhirError) as err:
        auth(tok, auth_settings, signing_key, cache, kit.now + 60)
    assert err.value.status == 401
    assert len(cache) == 0


def test_refusals_are_not_remembered(signing_key: SigningKey, auth_settings: Settings, kit: Any) -> None:
    verifier = CountingVerifier(signing_key, auth_settings)
    cache = VerifiedTokens(verifier)
    forged = token(signing_key, kit)[:-4] + "AAAA"
    for _ in range(3):
        with pytest.raises(TokenError):
            cache(forged, kit.now + 1)
    assert verifier.calls == 3 and len(cache) == 0


def test_a_token_not_yet_valid_when_cached_is_checked_in_full_again(
    signing_key: SigningKey, auth_settings: Settings, kit: Any
) -> None:
    """Verified at t, then presented with a clock that reads earlier (another worker's clock): the
    cache does not vouch for a time it has not checked."""
    verifier = CountingVerifier(signing_key, auth_settings)
    cache = VerifiedTokens(verifier)
    tok = token(signing_key, kit, now=kit.now + 100)
    cache(tok, kit.now + 100)
    with pytest.raises(TokenError):
        cache(tok, kit.now)
    assert verifier.calls == 2


def test_the_cache_is_bounded(signing_key: SigningKey, auth_settings: Settings, kit: Any) -> None:
    verifier = CountingVerifier(signing_key, auth_settings)
    cache = VerifiedTokens(verifier, capacity=3)
    tokens = [token(signing_key, kit, client_id=f"app{i}") for i in range(5)]
    for tok in tokens:
        cache(tok, kit.now + 1)
    assert len(cache) == 3
    cache(tokens[0], kit.now + 2)  # evicted first: verified again
    assert verifier.calls == 6
