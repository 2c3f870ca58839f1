"""The resource-server check: bearer token -> AccessContext, on every request; purpose-of-use headers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from gateway.auth.context import AccessContext
from gateway.auth.keys import SigningKey, generate_signing_key
from gateway.auth.resource_server import authenticate, authenticator
from gateway.auth.tokens import issue_access_token
from gateway.fhir.app_errors import fhir_error_handler
from gateway.fhir.errors import FhirError
from gateway.settings import Settings


def token(key: SigningKey, kit: Any, **changes: Any) -> str:
    values: dict[str, Any] = {
        "client_id": "app",
        "organization": "Organization/case-mgmt",
        "role": "case-manager",
        "scopes": ["system/Patient.rs", "system/Encounter.cruds"],
        "issuer": kit.base_url,
        "audience": kit.fhir_base,
        "now": kit.now,
    }
    values.update(changes)
    return issue_access_token(key, **values)


def headers(tok: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}", **extra}


def test_context_carries_client_organisation_role_scopes(
    signing_key: SigningKey, auth_settings: Settings, kit: Any
) -> None:
    ctx = authenticate(headers(token(signing_key, kit)), auth_settings, key=signing_key, now=kit.now + 1)
    assert ctx == AccessContext(
        client_id="app",
        organization="Organization/case-mgmt",
        role="case-manager",
        scopes=frozenset({"system/Patient.rs", "system/Encounter.cruds"}),
        purpose_of_use="TREAT",
    )
    assert not ctx.is_system


@pytest.mark.parametrize(
    ("make_headers", "at"),
    [
        (lambda key, kit: {}, 1),
        (lambda key, kit: {"Authorization": "Basic YTpi"}, 1),
        (lambda key, kit: {"Authorization": "Bearer "}, 1),
        (lambda key, kit: headers("not.a.token"), 1),
        (lambda key, kit: headers(token(key, kit)), 300),  # expired
        (lambda key, kit: headers(token(key, kit, lifetime=3600)), 301),  # lifetime capped at 300 s
        (lambda key, kit: headers(token(key, kit, audience="https://other.example/fhir")), 1),
        (lambda key, kit: headers(token(key, kit, issuer="https://other.example")), 1),
        (lambda key, kit: headers(token(generate_signing_key(), kit)), 1),  # another gateway's key
        (lambda key, kit: headers(token(key, kit, now=kit.now + 120)), 1),  # not valid yet
        (lambda key, kit: headers(token(key, kit) + "x"), 1),
        (lambda key, kit: headers("e" * 9000), 1),
    ],
)
def test_bad_tokens_are_401(
    make_headers: Any, at: int, signing_key: SigningKey, auth_settings: Settings, kit: Any
) -> None:
    with pytest.raises(FhirError) as err:
        authenticate(make_headers(signing_key, kit), auth_settings, key=signing_key, now=kit.now + at)
    assert err.value.status == 401 and err.value.code == "login"
    assert err.value.headers["WWW-Authenticate"] == "Bearer"


def test_client_assertion_is_not_an_access_token(
    signing_key: SigningKey, auth_settings: Settings, kit: Any, ec_key: Any
) -> None:
    with pytest.raises(FhirError):
        authenticate(headers(ec_key.sign(kit.claims("app"))), auth_settings, key=signing_key, now=kit.now)


def test_disabled_client_is_refused_at_once(signing_key: SigningKey, auth_settings: Settings, kit: Any) -> None:
    with pytest.raises(FhirError) as err:
        authenticate(
            headers(token(signing_key, kit)), auth_settings, key=signing_key, now=kit.now, client_active=lambda c: False
        )
    assert err.value.status == 401


@pytest.mark.parametrize(
    ("extra", "purpose", "reason"),
    [
        ({"X-Purpose-Of-Use": "TREAT"}, "TREAT", None),
        ({"x-purpose-of-use": "coc"}, "COC", None),
        ({"X-Purpose-Of-Use": "BTG", "X-Break-Glass-Reason": "unconscious in A&E"}, "BTG", "unconscious in A&E"),
    ],
)
def test_purpose_of_use(
    extra: dict[str, str], purpose: str, reason: str | None, signing_key: SigningKey, auth_settings: Settings, kit: Any
) -> None:
    ctx = authenticate(headers(token(signing_key, kit), **extra), auth_settings, key=signing_key, now=kit.now)
    assert (ctx.purpose_of_use, ctx.break_glass_reason) == (purpose, reason)
    assert ctx.is_break_glass is (purpose == "BTG")


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Purpose-Of-Use": "BTG"},
        {"X-Purpose-Of-Use": "BTG", "X-Break-Glass-Reason": "   "},
        {"X-Purpose-Of-Use": "BTG", "X-Break-Glass-Reason": "x" * 501},
        {"X-Purpose-Of-Use": "MARKETING"},
        {"X-Break-Glass-Reason": "no purpose given"},
    ],
)
def test_bad_purpose_is_403(extra: dict[str, str], signing_key: SigningKey, auth_settings: Settings, kit: Any) -> None:
    with pytest.raises(FhirError) as err:
        authenticate(headers(token(signing_key, kit), **extra), auth_settings, key=signing_key, now=kit.now)
    assert err.value.status == 403


async def test_fastapi_dependency(signing_key: SigningKey, auth_settings: Settings, kit: Any) -> None:
    app = FastAPI()
    app.add_exception_handler(FhirError, fhir_error_handler)
    require = authenticator(auth_settings, signing_key, clock=lambda: kit.now)

    @app.get("/fhir/whoami")
    def whoami(ctx: AccessContext = Depends(require)) -> dict[str, str | None]:
        return {"client": ctx.client_id, "org": ctx.organization}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=kit.base_url) as http:
        ok = await http.get("/fhir/whoami", headers=headers(token(signing_key, kit)))
        refused = await http.get("/fhir/whoami")
    assert ok.json() == {"client": "app", "org": "Organization/case-mgmt"}
    assert refused.status_code == 401
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_patient_context_travels_in_the_token(signing_key: SigningKey, auth_settings: Settings, kit: Any) -> None:
    tok = token(signing_key, kit, scopes=["patient/*.rs", "system/Patient.rs"], patient="p1")
    ctx = authenticate(headers(tok), auth_settings, key=signing_key, now=kit.now + 1)
    assert ctx.patient == "p1" and ctx.scopes == frozenset({"patient/*.rs", "system/Patient.rs"})


def test_patient_scopes_without_a_patient_grant_nothing(
    signing_key: SigningKey, auth_settings: Settings, kit: Any
) -> None:
    tok = token(signing_key, kit, scopes=["patient/*.rs", "system/Patient.rs"])
    ctx = authenticate(headers(tok), auth_settings, key=signing_key, now=kit.now + 1)
    assert ctx.patient is None and ctx.scopes == frozenset({"system/Patient.rs"})
