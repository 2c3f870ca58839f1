"""Client-assertion checks below the endpoint: the signature step pins its algorithms on its own,
so an HS256 or `none` token is refused even if the header checks were ever bypassed."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.auth.assertion import Assertion, read_assertion, replay_ttl, select_key, verify_assertion
from gateway.auth.errors import OAuthError
from gateway.auth.jwks import parse_jwks


def _raw(token: str, header: dict[str, Any], claims: dict[str, Any]) -> Assertion:
    """An Assertion object built without read_assertion's header checks."""
    return Assertion(token, header, claims)


def test_signature_step_refuses_hs256_made_with_the_public_key(rsa_key: Any, kit: Any) -> None:
    key = parse_jwks(kit.jwks(rsa_key)).keys[0]
    claims = kit.claims("app")
    header = {"alg": "HS256", "kid": "rsa-1"}
    token = kit.hs256_with(rsa_key.public_pem(), header, claims)
    with pytest.raises(OAuthError) as err:
        verify_assertion(_raw(token, header, claims), key, client_id="app", token_url=kit.token_url, now=kit.now)
    assert err.value.code == "invalid_client" and err.value.status == 401


def test_signature_step_refuses_alg_none(rsa_key: Any, kit: Any) -> None:
    key = parse_jwks(kit.jwks(rsa_key)).keys[0]
    claims = kit.claims("app")
    header = {"alg": "none", "kid": "rsa-1"}
    with pytest.raises(OAuthError):
        verify_assertion(
            _raw(kit.unsigned(header, claims), header, claims),
            key,
            client_id="app",
            token_url=kit.token_url,
            now=kit.now,
        )


def test_valid_assertion_verifies_and_sets_replay_window(ec_key: Any, kit: Any) -> None:
    assertion = read_assertion(ec_key.sign(kit.claims("app")))
    key = select_key(assertion, parse_jwks(kit.jwks(ec_key)))
    claims = verify_assertion(assertion, key, client_id="app", token_url=kit.token_url, now=kit.now)
    assert claims["iss"] == "app"
    # remembered until exp (+ skew): nobody can replay it while it could still be accepted
    assert replay_ttl(claims, kit.now) == 240 + 30


def test_single_element_aud_list_is_accepted(rsa_key: Any, kit: Any) -> None:
    assertion = read_assertion(rsa_key.sign(kit.claims("app", aud=[kit.token_url])))
    key = select_key(assertion, parse_jwks(kit.jwks(rsa_key)))
    assert verify_assertion(assertion, key, client_id="app", token_url=kit.token_url, now=kit.now)["sub"] == "app"


def test_multi_element_aud_list_is_refused(rsa_key: Any, kit: Any) -> None:
    assertion = read_assertion(rsa_key.sign(kit.claims("app", aud=[kit.token_url, "https://other.example"])))
    key = select_key(assertion, parse_jwks(kit.jwks(rsa_key)))
    with pytest.raises(OAuthError, match="aud"):
        verify_assertion(assertion, key, client_id="app", token_url=kit.token_url, now=kit.now)


@pytest.mark.parametrize("exp_offset", [-31, 331])
def test_exp_limits_with_clock_skew(rsa_key: Any, kit: Any, exp_offset: int) -> None:
    assertion = read_assertion(rsa_key.sign(kit.claims("app", exp=int(kit.now) + exp_offset)))
    key = select_key(assertion, parse_jwks(kit.jwks(rsa_key)))
    with pytest.raises(OAuthError, match="exp"):
        verify_assertion(assertion, key, client_id="app", token_url=kit.token_url, now=kit.now)
