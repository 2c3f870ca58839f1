"""The SMART configuration document (`/.well-known/smart-configuration`), built from settings.

Describes exactly what the token endpoint implements: client credentials only, `private_key_jwt`
with RS384/ES384 or `client_secret_basic`, SMART v2 (and v1) resource scopes.
"""

from __future__ import annotations

from typing import Any

from gateway.auth.assertion import ALGORITHMS
from gateway.auth.clients import AUTH_METHODS
from gateway.auth.tokens import issuer, token_url
from gateway.settings import Settings

SCOPES_SUPPORTED = [
    "system/*.cruds",
    "system/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "patient/*.rs",
    "system/*.read",
    "system/*.write",
]
CAPABILITIES = [
    "client-confidential-asymmetric",
    "client-confidential-symmetric",
    "permission-v1",
    "permission-v2",
]


def smart_configuration(settings: Settings) -> dict[str, Any]:
    """The discovery JSON, served unauthenticated at `/.well-known/smart-configuration` (and under the FHIR base)."""
    return {
        "issuer": issuer(settings),
        "token_endpoint": token_url(settings),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["token"],
        "capabilities": CAPABILITIES,
    }
