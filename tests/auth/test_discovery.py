"""`/.well-known/smart-configuration` (SMART App Launch 2.x, "Conformance"): advertises what the token
endpoint implements, and nothing it does not."""

from __future__ import annotations

from gateway.auth.discovery import smart_configuration
from gateway.auth.scopes import parse_scopes
from gateway.settings import Settings


def test_document_describes_the_token_endpoint(auth_settings: Settings) -> None:
    doc = smart_configuration(auth_settings)
    assert doc["token_endpoint"] == "https://gw.example/auth/token"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert doc["token_endpoint_auth_methods_supported"] == ["private_key_jwt", "client_secret_basic"]
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert {"client-confidential-asymmetric", "permission-v2"} <= set(doc["capabilities"])
    assert len(parse_scopes(doc["scopes_supported"])) == len(doc["scopes_supported"])
