"""SMART Backend Services token endpoint (hl7.org/fhir/smart-app-launch/backend-services.html) with
real signed JWTs: valid RS384 / ES384 assertions get a token; every known attack is `invalid_client`."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine

from gateway.auth.assertion import ASSERTION_TYPE
from gateway.auth.clients import ClientRepository
from gateway.auth.jwks import JwksCache
from gateway.auth.keys import SigningKey
from gateway.auth.replay import MemoryReplayGuard
from gateway.auth.resource_server import authenticate
from gateway.auth.token_endpoint import TokenEndpoint, auth_router
from gateway.fhir.errors import FhirError
from gateway.settings import Settings

REGISTERED = "system/Patient.rs system/Encounter.cruds"


@dataclass
class Gateway:
    http: httpx.AsyncClient
    endpoint: TokenEndpoint
    clients: ClientRepository


@pytest.fixture(scope="module")
def seeded_db(migrated_db: Path, tmp_path_factory: pytest.TempPathFactory, rsa_key: Any, ec_key: Any, kit: Any) -> Path:
    """The migrated database with the two test clients, built once (scrypt hashing is deliberately slow)."""
    path = tmp_path_factory.mktemp("seeded") / "gateway.db"
    shutil.copy(migrated_db, path)
    engine = create_engine(f"sqlite:///{path}")
    clients = ClientRepository(engine)
    clients.add(
        client_id="app",
        name="App",
        organization="Organization/case-mgmt",
        role="case-manager",
        scopes=REGISTERED,
        jwks=kit.jwks(rsa_key, ec_key),
    )
    clients.add(
        client_id="basic",
        name="Basic",
        organization="Organization/la-e09",
        role="social-worker",
        scopes=REGISTERED,
        secret="correct horse",
    )
    engine.dispose()
    return path


@pytest.fixture
async def gw(
    seeded_db: Path, tmp_path: Path, auth_settings: Settings, signing_key: SigningKey, clock: Any, kit: Any
) -> AsyncIterator[Gateway]:
    shutil.copy(seeded_db, tmp_path / "gateway.db")
    engine = create_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    clients = ClientRepository(engine)
    endpoint = TokenEndpoint(auth_settings, clients, signing_key, MemoryReplayGuard(), JwksCache(), clock=clock)
    app = FastAPI()
    app.include_router(auth_router(endpoint))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=kit.base_url) as http:
        yield Gateway(http, endpoint, clients)
    await endpoint.jwks.aclose()
    engine.dispose()


def form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "scope": "system/Patient.rs",
        **extra,
    }


async def post(gw: Gateway, data: dict[str, str], **kw: Any) -> httpx.Response:
    return await gw.http.post("/auth/token", data=data, **kw)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def assert_invalid_client(response: httpx.Response, reason: str = "") -> None:
    assert response.status_code == 401, response.text
    assert reason in response.json()["error_description"]
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
async def test_valid_assertion_gets_a_short_lived_token(
    gw: Gateway,
    key_name: str,
    request: pytest.FixtureRequest,
    kit: Any,
    auth_settings: Settings,
    signing_key: SigningKey,
) -> None:
    key = request.getfixturevalue(key_name)
    response = await post(gw, form(key.sign(kit.claims("app"))))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs"
    assert "refresh_token" not in body
    assert response.headers["cache-control"] == "no-store"
    ctx = authenticate(
        {"Authorization": f"Bearer {body['access_token']}"}, auth_settings, key=signing_key, now=kit.now + 10
    )
    assert (ctx.client_id, ctx.organization, ctx.role) == ("app", "Organization/case-mgmt", "case-manager")
    assert ctx.scopes == frozenset({"system/Patient.rs"})


async def test_token_expiry_is_enforced_by_authenticate(
    gw: Gateway, rsa_key: Any, kit: Any, auth_settings: Settings, signing_key: SigningKey
) -> None:
    token = (await post(gw, form(rsa_key.sign(kit.claims("app"))))).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert authenticate(headers, auth_settings, key=signing_key, now=kit.now + 299).client_id == "app"
    with pytest.raises(FhirError) as err:
        authenticate(headers, auth_settings, key=signing_key, now=kit.now + 300)
    assert err.value.status == 401


async def test_client_id_form_parameter_may_repeat_the_issuer(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    response = await post(gw, form(rsa_key.sign(kit.claims("app")), client_id="app"))
    assert response.status_code == 200


def _cases() -> list[tuple[str, Any]]:
    """(name, build(kit, keys) -> form data) for every refusal the issue lists, and a few more."""
    n = 1_750_000_000

    def signed(**changes: Any) -> Any:
        return lambda kit, k: form(k["rsa"].sign(kit.claims("app", **changes)))

    return [
        ("expired", signed(exp=n - 60)),
        ("exp more than 5 minutes ahead", signed(exp=n + 600)),
        ("no exp", signed(exp=None)),
        ("nbf in the future", signed(nbf=n + 120)),
        ("aud is not the token url", signed(aud="https://other.example/auth/token")),
        ("aud is the fhir base", signed(aud="https://gw.example/fhir")),
        ("iss differs from sub", signed(sub="someone-else")),
        ("iss and sub are another client", signed(iss="basic", sub="basic")),
        ("unknown client", signed(iss="nobody", sub="nobody")),
        ("no jti", signed(jti=None)),
        ("form client_id differs", lambda kit, k: form(k["rsa"].sign(kit.claims("app")), client_id="basic")),
        (
            "wrong assertion type",
            lambda kit, k: {**form(k["rsa"].sign(kit.claims("app"))), "client_assertion_type": "x"},
        ),
        (
            "alg none, no signature",
            lambda kit, k: form(kit.unsigned({"alg": "none", "kid": "rsa-1"}, kit.claims("app"))),
        ),
        (
            "alg none, some signature",
            lambda kit, k: form(kit.unsigned({"alg": "none", "kid": "rsa-1"}, kit.claims("app"), "c2ln")),
        ),
        (
            "HS256 keyed with the public key",
            lambda kit, k: form(
                kit.hs256_with(k["rsa"].public_pem(), {"alg": "HS256", "kid": "rsa-1"}, kit.claims("app"))
            ),
        ),
        (
            "HS256 keyed with the JWK n",
            lambda kit, k: form(
                kit.hs256_with(k["rsa"].jwk()["n"].encode(), {"alg": "HS256", "kid": "rsa-1"}, kit.claims("app"))
            ),
        ),
        ("RS256 is not an allowed alg", lambda kit, k: form(k["rsa"].sign(kit.claims("app"), alg="RS256"))),
        ("alg does not fit the key type", lambda kit, k: form(k["rsa"].sign(kit.claims("app"), alg="ES384"))),
        ("unregistered kid", lambda kit, k: form(k["rsa"].sign(kit.claims("app"), kid="rsa-2"))),
        ("no kid", lambda kit, k: form(k["rsa"].sign(kit.claims("app"), kid=None))),
        (
            "unregistered jku",
            lambda kit, k: form(k["rsa"].sign(kit.claims("app"), jku="https://attacker.example/jwks.json")),
        ),
        ("embedded jwk header", lambda kit, k: form(k["attacker"].sign(kit.claims("app"), jwk=k["attacker"].jwk()))),
        ("x5c header", lambda kit, k: form(k["rsa"].sign(kit.claims("app"), x5c=["MIIB"]))),
        (
            "signed by an unregistered key under a registered kid",
            lambda kit, k: form(k["attacker"].sign(kit.claims("app"))),
        ),
        (
            "tampered claims",
            lambda kit, k: form(_swap_payload(k["rsa"].sign(kit.claims("app")), kit, kit.claims("app", exp=n + 200))),
        ),
        ("oversize assertion", lambda kit, k: form(k["rsa"].sign(kit.claims("app", pad="x" * 9000)))),
        ("not a JWT", lambda kit, k: form("not-a-jwt")),
        ("JWE-shaped", lambda kit, k: form("a.b.c.d.e")),
        ("no client authentication", lambda kit, k: {"grant_type": "client_credentials"}),
    ]


def _swap_payload(token: str, kit: Any, claims: dict[str, Any]) -> str:
    head, _, sig = token.split(".")
    return f"{head}.{kit.b64u(json.dumps(claims).encode())}.{sig}"


# The refusal reason each attack must be caught by (so a case cannot pass by failing elsewhere).
REASONS = {
    "expired": "has expired",
    "exp more than 5 minutes ahead": "more than 5 minutes ahead",
    "no exp": "needs exp",
    "nbf in the future": "nbf is in the future",
    "aud is not the token url": "aud must be the token endpoint URL",
    "aud is the fhir base": "aud must be the token endpoint URL",
    "iss differs from sub": "iss and sub must both be the client_id",
    "iss and sub are another client": "unknown or disabled client",
    "unknown client": "unknown or disabled client",
    "no jti": "needs a jti",
    "form client_id differs": "client_id does not match",
    "wrong assertion type": "client_assertion_type must be",
    "alg none, no signature": "must be a signed JWT",
    "alg none, some signature": "alg must be one of RS384, ES384",
    "HS256 keyed with the public key": "alg must be one of RS384, ES384",
    "HS256 keyed with the JWK n": "alg must be one of RS384, ES384",
    "RS256 is not an allowed alg": "alg must be one of RS384, ES384",
    "alg does not fit the key type": "alg does not fit the registered key",
    "unregistered kid": "kid is not a registered key",
    "no kid": "needs a 'kid'",
    "unregistered jku": "jku is not the registered JWKS URL",
    "embedded jwk header": "'jwk' is not accepted",
    "x5c header": "'x5c' is not accepted",
    "signed by an unregistered key under a registered kid": "signature is not valid",
    "tampered claims": "signature is not valid",
    "oversize assertion": "larger than 8192 bytes",
    "not a JWT": "must be a signed JWT",
    "JWE-shaped": "must be a signed JWT",
    "no client authentication": "client authentication is required",
}


@pytest.mark.parametrize(("name", "build"), _cases(), ids=[c[0] for c in _cases()])
async def test_attacks_are_invalid_client(
    gw: Gateway, name: str, build: Any, kit: Any, rsa_key: Any, attacker_key: Any
) -> None:
    data = build(kit, {"rsa": rsa_key, "attacker": attacker_key})
    assert_invalid_client(await post(gw, data), REASONS[name])


async def test_replayed_jti_is_refused(gw: Gateway, ec_key: Any, kit: Any) -> None:
    assertion = ec_key.sign(kit.claims("app"))
    assert (await post(gw, form(assertion))).status_code == 200
    assert_invalid_client(await post(gw, form(assertion)))
    # Same jti in a freshly signed assertion is a replay too.
    jti = "fixed-jti"
    assert (await post(gw, form(ec_key.sign(kit.claims("app", jti=jti))))).status_code == 200
    assert_invalid_client(await post(gw, form(ec_key.sign(kit.claims("app", jti=jti, iat=int(kit.now) + 1)))))


async def test_a_refused_assertion_does_not_burn_its_jti(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    claims = kit.claims("app")
    assert_invalid_client(await post(gw, form(rsa_key.sign({**claims, "aud": "https://wrong.example"}))))
    assert (await post(gw, form(rsa_key.sign(claims)))).status_code == 200


async def test_disabled_client_is_refused(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    gw.clients.disable("app")
    assert_invalid_client(await post(gw, form(rsa_key.sign(kit.claims("app")))))


async def test_assertion_within_clock_skew_is_accepted(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    """exp = now + 300 from a client whose clock runs a few seconds ahead still works."""
    response = await post(gw, form(rsa_key.sign(kit.claims("app", exp=int(kit.now) + 310))))
    assert response.status_code == 200


# --- scopes ---


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("system/Patient.rs system/Observation.rs", "system/Patient.rs"),
        ("system/*.cruds", "system/Patient.rs system/Encounter.cruds"),
        ("system/Patient.cruds", "system/Patient.rs"),
        ("system/Encounter.read", "system/Encounter.rs"),
        ("", "system/Patient.rs system/Encounter.cruds"),  # no scope asked: the registered scopes
    ],
)
async def test_granted_scope_is_narrowed_to_registered(
    gw: Gateway, rsa_key: Any, kit: Any, requested: str, granted: str
) -> None:
    response = await post(gw, form(rsa_key.sign(kit.claims("app")), scope=requested))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == granted


async def test_no_registered_scope_requested_is_invalid_scope(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    response = await post(gw, form(rsa_key.sign(kit.claims("app")), scope="system/Observation.rs user/Patient.rs"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


# --- client_secret_basic ---


async def test_client_secret_basic(gw: Gateway, kit: Any, auth_settings: Settings, signing_key: SigningKey) -> None:
    data = {"grant_type": "client_credentials", "scope": "system/Encounter.cu"}
    response = await post(gw, data, headers=basic("basic", "correct horse"))
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Encounter.cu"
    ctx = authenticate(
        {"authorization": "Bearer " + response.json()["access_token"]}, auth_settings, key=signing_key, now=kit.now
    )
    assert (ctx.client_id, ctx.organization) == ("basic", "Organization/la-e09")


@pytest.mark.parametrize(
    "headers",
    [
        basic("basic", "wrong"),
        basic("nobody", "correct horse"),
        basic("app", "correct horse"),  # a key-registered client cannot use a secret
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Bearer abc"},
    ],
)
async def test_bad_basic_credentials_are_invalid_client(gw: Gateway, headers: dict[str, str]) -> None:
    response = await post(gw, {"grant_type": "client_credentials"}, headers=headers)
    assert_invalid_client(response)
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_secret_client_cannot_use_an_assertion(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    assert_invalid_client(await post(gw, form(rsa_key.sign(kit.claims("basic")))))


async def test_disabled_secret_client_is_refused(gw: Gateway) -> None:
    gw.clients.disable("basic")
    assert_invalid_client(await post(gw, {"grant_type": "client_credentials"}, headers=basic("basic", "correct horse")))


# --- request shape ---


async def test_two_authentication_methods_are_refused(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    response = await post(gw, form(rsa_key.sign(kit.claims("app"))), headers=basic("basic", "correct horse"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_only_client_credentials_grant(gw: Gateway, rsa_key: Any, kit: Any) -> None:
    response = await post(gw, form(rsa_key.sign(kit.claims("app")), grant_type="refresh_token"))
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


async def test_json_body_is_refused(gw: Gateway) -> None:
    response = await gw.http.post("/auth/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_repeated_parameters_are_refused(gw: Gateway) -> None:
    body = "grant_type=client_credentials&scope=a&scope=b"
    response = await gw.http.post(
        "/auth/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_discovery_document_is_served(gw: Gateway, kit: Any) -> None:
    response = await gw.http.get("/.well-known/smart-configuration")
    assert response.status_code == 200
    doc = response.json()
    assert doc["token_endpoint"] == kit.token_url
    assert doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert "client-confidential-asymmetric" in doc["capabilities"] and "permission-v2" in doc["capabilities"]


# --- JWKS URL, served by a real loopback HTTP server ---


class JwksServer:
    def __init__(self, body: str) -> None:
        self.body = body
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                data = outer.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> JwksServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def jwks_server(ec_key: Any, kit: Any) -> Iterator[JwksServer]:
    with JwksServer(kit.jwks(ec_key)) as server:
        yield server


async def test_jwks_url_client(gw: Gateway, jwks_server: JwksServer, ec_key: Any, rsa_key: Any, kit: Any) -> None:
    gw.clients.add(
        client_id="remote",
        name="Remote",
        organization="Organization/trust-rxx",
        role="clinician",
        scopes="system/Patient.rs",
        jwks_url=jwks_server.url,
    )
    ok = await post(gw, form(ec_key.sign(kit.claims("remote"), jku=jwks_server.url)))
    assert ok.status_code == 200, ok.text
    again = await post(gw, form(ec_key.sign(kit.claims("remote"))))
    assert again.status_code == 200
    assert jwks_server.hits == 1  # cached
    # A key the URL does not publish is refused, even after one (rate-limited) refetch.
    assert_invalid_client(await post(gw, form(rsa_key.sign(kit.claims("remote")))))
    assert_invalid_client(await post(gw, form(ec_key.sign(kit.claims("remote"), jku=jwks_server.url + "?x"))))
