"""The OAuth 2.0 token endpoint (client credentials grant) for SMART Backend Services.

`TokenEndpoint.grant` does the work on a parsed form; `auth_router` wraps it as an APIRouter
(POST /auth/token, and GET of the SMART discovery document). Client authentication is either
`private_key_jwt` (see assertion.py for every check) or HTTP Basic with a client secret. The
granted scope is the requested scope cut down to what the client was registered with.

Patient context: Backend Services has no launch, so a client that may use SMART `patient/`
scopes is registered with one fixed Patient (`client add --patient`). When the grant includes a
`patient/` scope, the token carries that Patient and the response returns it as `patient`, as
SMART App Launch returns launch context alongside the access token. A token request cannot name
a patient: nothing in the client credentials grant defines that, and letting a client choose
would let it choose anyone. To serve several people, register one client per person, or use
`system/` scopes under the organisation's sharing agreements.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter
from joserfc.jwk import Key, KeySet
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.auth.assertion import (
    ASSERTION_TYPE,
    Assertion,
    check_jku,
    read_assertion,
    replay_ttl,
    select_key,
    verify_assertion,
)
from gateway.auth.client_secrets import hash_secret, new_secret, verify_secret
from gateway.auth.clients import CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT, Client, ClientRepository
from gateway.auth.discovery import smart_configuration
from gateway.auth.errors import OAuthError, invalid_client, invalid_request, invalid_scope, unsupported_grant_type
from gateway.auth.jwks import JwksCache, JwksError, parse_jwks
from gateway.auth.keys import SigningKey
from gateway.auth.replay import ReplayGuard
from gateway.auth.scopes import narrow
from gateway.auth.tokens import ACCESS_TOKEN_SECONDS, issue_access_token, issuer, token_url
from gateway.logging import get_logger
from gateway.settings import Settings

log = get_logger("gateway.auth")

MAX_FORM_BYTES = 32 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@functools.cache
def _dummy_hash() -> str:
    return hash_secret(new_secret())


@dataclass
class TokenEndpoint:
    settings: Settings
    clients: ClientRepository
    signing_key: SigningKey
    replay: ReplayGuard
    jwks: JwksCache
    clock: Callable[[], float] = time.time

    async def grant(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        """The token response for a client-credentials request. Raises OAuthError."""
        if form.get("grant_type") != "client_credentials":
            raise unsupported_grant_type("only grant_type=client_credentials is supported")
        now = self.clock()
        if "client_assertion" in form or "client_assertion_type" in form:
            if authorization:
                raise invalid_request("use one client authentication method, not two")
            client = await self._by_assertion(form, now)
        elif authorization:
            client = await self._by_secret(authorization)
        else:
            raise invalid_client("client authentication is required")
        requested = form.get("scope") or " ".join(client.scopes)
        granted = narrow(requested.split(), client.scopes)
        if client.patient is None:
            granted = [s for s in granted if not s.startswith("patient/")]
        if not granted:
            raise invalid_scope("none of the requested scopes is registered for this client")
        patient = client.patient if any(s.startswith("patient/") for s in granted) else None
        token = issue_access_token(
            self.signing_key,
            client_id=client.client_id,
            organization=client.organization,
            role=client.role,
            scopes=granted,
            issuer=issuer(self.settings),
            audience=self.settings.fhir_base,
            now=now,
            patient=patient,
        )
        log.info("auth.token_issued", client_id=client.client_id, scope=" ".join(granted))
        response: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": " ".join(granted),
        }
        if patient is not None:
            response["patient"] = patient
        return response

    async def _client(self, client_id: str, method: str) -> Client:
        client = await run_in_threadpool(self.clients.get, client_id)
        if client is None or client.disabled or client.auth_method != method:
            raise invalid_client("unknown or disabled client")
        return client

    async def _by_assertion(self, form: Mapping[str, str], now: float) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise invalid_client(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = read_assertion(form.get("client_assertion", ""))
        if "client_id" in form and form["client_id"] != assertion.client_id:
            raise invalid_client("client_id does not match the client assertion")
        client = await self._client(assertion.client_id, PRIVATE_KEY_JWT)
        check_jku(assertion, client.jwks_url)
        key = await self._key(client, assertion)
        url = token_url(self.settings)
        claims = verify_assertion(assertion, key, client_id=client.client_id, token_url=url, now=now)
        if not await self.replay.first_use(f"{client.client_id}:{claims['jti']}", replay_ttl(claims, now)):
            log.warning("auth.assertion_replayed", client_id=client.client_id)
            raise invalid_client("client assertion jti has been used before")
        return client

    async def _keys(self, client: Client, *, refresh: bool = False) -> KeySet:
        try:
            if client.jwks is not None:
                return parse_jwks(client.jwks)
            assert client.jwks_url is not None
            return await self.jwks.keys(client.jwks_url, refresh=refresh)
        except JwksError as exc:
            log.warning("auth.jwks_unusable", client_id=client.client_id, reason=str(exc))
            raise invalid_client("the client's registered keys could not be used") from exc

    async def _key(self, client: Client, assertion: Assertion) -> Key:
        try:
            return select_key(assertion, await self._keys(client))
        except OAuthError:
            if client.jwks_url is None:
                raise
        # A kid we have not seen may be a rotated key: refetch the URL (rate-limited by the cache).
        return select_key(assertion, await self._keys(client, refresh=True))

    async def _by_secret(self, authorization: str) -> Client:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise invalid_client("use HTTP Basic or a client assertion")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise invalid_client("malformed Basic credentials") from exc
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise invalid_client("malformed Basic credentials")
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        client = await run_in_threadpool(self.clients.get, client_id)
        usable = client is not None and not client.disabled and client.auth_method == CLIENT_SECRET_BASIC
        # Hash even for an unknown client, so response time does not tell which client_ids exist.
        stored = client.secret_hash if client is not None and usable else _dummy_hash()
        matches = await run_in_threadpool(verify_secret, secret, stored)
        if client is None or not usable:
            raise invalid_client("unknown or disabled client")
        if not matches:
            log.info("auth.secret_refused", client_id=client.client_id)
            raise invalid_client("client secret is not valid")
        return client


def _error_response(error: OAuthError, *, basic: bool) -> JSONResponse:
    headers = dict(_NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="care-gateway"' if basic else 'Bearer realm="care-gateway"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _read_form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise invalid_request("the token request must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise invalid_request("the token request is too large")
    form: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
        if name in form:
            raise invalid_request(f"parameter {name!r} is repeated")
        form[name] = value
    return form


def auth_router(endpoint: TokenEndpoint, *, token_path: str = "/auth/token") -> APIRouter:
    """POST `token_path` (the token endpoint) and GET `/.well-known/smart-configuration`.

    The lead also serves the discovery document under the FHIR base (`/fhir/.well-known/…`)
    with `smart_configuration(settings)`, ahead of the FHIR `{type}/{id}` routes.
    """
    router = APIRouter()

    @router.post(token_path, include_in_schema=True)
    async def token(request: Request) -> JSONResponse:
        authorization = request.headers.get("authorization")
        try:
            form = await _read_form(request)
            body = await endpoint.grant(form, authorization)
        except OAuthError as error:
            return _error_response(error, basic=bool(authorization))
        return JSONResponse(body, headers=_NO_STORE)

    @router.get("/.well-known/smart-configuration")
    async def discovery() -> JSONResponse:
        return JSONResponse(smart_configuration(endpoint.settings))

    return router
