"""Who is asking: SMART Backend Services token endpoint, client registry, SMART scopes, and the
resource-server check that turns a bearer token into an `AccessContext`."""

from __future__ import annotations

from gateway.auth.cli import register_cli
from gateway.auth.clients import (
    AUTH_METHODS,
    CLIENT_SECRET_BASIC,
    PRIVATE_KEY_JWT,
    Client,
    ClientError,
    ClientRepository,
    client_enabled,
)
from gateway.auth.context import BREAK_GLASS, TREATMENT, AccessContext, system_context
from gateway.auth.demo import DEMO_CLIENTS, demo_clients
from gateway.auth.discovery import smart_configuration
from gateway.auth.errors import OAuthError
from gateway.auth.jwks import JwksCache, JwksError, parse_jwks
from gateway.auth.keys import SigningKey, load_signing_key
from gateway.auth.purpose import PURPOSE_HEADER, PURPOSES, REASON_HEADER, purpose_from_headers
from gateway.auth.replay import MemoryReplayGuard, RedisReplayGuard, ReplayGuard, replay_guard
from gateway.auth.resource_server import authenticate, authenticator, verified_tokens
from gateway.auth.scopes import (
    Restriction,
    Scope,
    ScopeError,
    allows,
    narrow,
    parse_scope,
    parse_scopes,
    patient_confined,
    restriction,
)
from gateway.auth.token_endpoint import TokenEndpoint, auth_router
from gateway.auth.tokens import ACCESS_TOKEN_SECONDS, issuer, token_url

__all__ = [
    "ACCESS_TOKEN_SECONDS",
    "AUTH_METHODS",
    "BREAK_GLASS",
    "CLIENT_SECRET_BASIC",
    "DEMO_CLIENTS",
    "PRIVATE_KEY_JWT",
    "PURPOSES",
    "PURPOSE_HEADER",
    "REASON_HEADER",
    "TREATMENT",
    "AccessContext",
    "Client",
    "ClientError",
    "ClientRepository",
    "JwksCache",
    "JwksError",
    "MemoryReplayGuard",
    "OAuthError",
    "RedisReplayGuard",
    "ReplayGuard",
    "Restriction",
    "Scope",
    "ScopeError",
    "SigningKey",
    "TokenEndpoint",
    "allows",
    "auth_router",
    "authenticate",
    "authenticator",
    "client_enabled",
    "demo_clients",
    "issuer",
    "load_signing_key",
    "narrow",
    "parse_jwks",
    "parse_scope",
    "parse_scopes",
    "patient_confined",
    "purpose_from_headers",
    "register_cli",
    "replay_guard",
    "restriction",
    "smart_configuration",
    "system_context",
    "token_url",
    "verified_tokens",
]
