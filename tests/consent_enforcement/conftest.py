"""A gateway whose callers are told apart by a test header, with the real consent guard.

Token handling is tested in tests/auth; here the caller's identity is injected so each test
can focus on what the consent engine lets that caller see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from gateway.alerts.break_glass import BreakGlassNotifier
from gateway.app import create_app
from gateway.audit.writer import ListAuditSink
from gateway.auth.context import AccessContext, system_context
from gateway.fhir.access import ConsentGuard
from gateway.fhir.services import Services
from gateway.settings import Settings

CALLERS = {
    "trust": AccessContext(
        client_id="trust-pas",
        organization="Organization/trust-a",
        role="clinician",
        scopes=frozenset({"system/*.cruds"}),
    ),
    "council": AccessContext(
        client_id="council-app",
        organization="Organization/council-b",
        role="social-worker",
        scopes=frozenset({"system/*.rs"}),
    ),
    "btg": AccessContext(
        client_id="ed-doctor",
        organization="Organization/trust-a",
        role="clinician",
        scopes=frozenset({"system/*.rs"}),
        purpose_of_use="BTG",
        break_glass_reason="unconscious in resus, no history available",
    ),
    "trust-2": AccessContext(
        client_id="trust-other",
        organization="Organization/trust-a",
        role="clinician",
        scopes=frozenset({"system/*.rs"}),
    ),
}


def _authenticate(request: Request) -> AccessContext:
    who = request.headers.get("x-test-caller", "admin")
    return CALLERS.get(who) or system_context("test-admin")


@pytest.fixture
def audit_sink() -> ListAuditSink:
    return ListAuditSink()


@pytest.fixture
def guarded_app(settings: Settings, services: Services, audit_sink: ListAuditSink) -> FastAPI:
    services.authenticate = _authenticate
    services.extras["guard"] = ConsentGuard(
        services.store, audit=audit_sink, on_obligations=BreakGlassNotifier(services.store)
    )
    return create_app(settings, services, components=False)


@pytest.fixture
async def as_caller(guarded_app: FastAPI) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    clients: dict[str, httpx.AsyncClient] = {}

    def get(who: str) -> httpx.AsyncClient:
        if who not in clients:
            clients[who] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=guarded_app),
                base_url="http://testserver/fhir",
                headers={"x-test-caller": who},
            )
        return clients[who]

    yield get
    for c in clients.values():
        await c.aclose()
