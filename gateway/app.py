"""Wiring: builds the services from settings and mounts the FHIR face and operational endpoints.

No logic of its own: each piece lives in its stage's package.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway import events
from gateway.alerts import install as alerts_install
from gateway.alerts import ward_list_push
from gateway.alerts.break_glass import BreakGlassNotifier
from gateway.audit.storage import store_audit_events
from gateway.audit.writer import BatchingAuditWriter
from gateway.auth import (
    ClientRepository,
    JwksCache,
    TokenEndpoint,
    auth_router,
    authenticator,
    client_enabled,
    demo_clients,
    load_signing_key,
    replay_guard,
    smart_configuration,
    token_url,
    verified_tokens,
)
from gateway.auth.context import AccessContext
from gateway.consent.decision_cache import DecisionCache
from gateway.consent.pdp import PolicyDecisionPoint
from gateway.consent.policy import load_policy
from gateway.correlation import CorrelationMiddleware
from gateway.fhir.access import ConsentGuard, subscriber_visibility
from gateway.fhir.app_errors import fhir_error_handler, http_error_handler, unexpected_error_handler
from gateway.fhir.errors import FhirError
from gateway.fhir.export import web as export_web
from gateway.fhir.routes import fhir_routes
from gateway.fhir.search.paging import PageSigner
from gateway.fhir.services import Services
from gateway.intake import web as intake_web
from gateway.intake.sources import source_organization_stamp
from gateway.logging import configure_logging, get_logger
from gateway.settings import Settings
from gateway.store import migrate
from gateway.store.api import Store
from gateway.store.engine import make_engine
from gateway.store.meta_secrets import meta_secret
from gateway.web import case_management
from gateway.web import ward_list as ward_list_web

log = get_logger("gateway.app")

OPEN_ACCESS = AccessContext(client_id="anonymous", scopes=frozenset({"system/*.cruds"}))


def _open_authenticator(request: Request) -> AccessContext:
    return OPEN_ACCESS


def build_services(settings: Settings) -> Services:
    settings.ensure_data_dir()
    engine = make_engine(settings.effective_database_url)
    migrate.upgrade(engine)
    store = Store(engine, fhir_base=settings.fhir_base)
    secret = settings.paging_secret.encode() if settings.paging_secret else meta_secret(store, "paging_secret")
    services = Services(settings=settings, store=store, signer=PageSigner(secret), authenticate=_open_authenticator)
    store.before_write("*", source_organization_stamp(intake_web.sources_of(services)))
    if settings.auth_required:
        _secure(services)
    return services


AUDIT_BATCH_MS = 200
"""How long the audit writer gathers events into one transaction (a read of AuditEvent has it store
what it holds first: `audit_flush`). A batch costs ~0.5 ms of CPU on top of ~0.16 ms per event, but
1 s batches made `$everything`'s p95 with consent on worse (+21–24 % against +13–19 % in alternated
`consent-overhead` runs): a longer write falls on the next request more often."""


def _secure(services: Services) -> None:
    """Tokens on every FHIR request, consent on every read, and an audit trail of both."""
    settings, store = services.settings, services.store
    key = load_signing_key(settings, jwk_json=settings.token_signing_key)
    clients = ClientRepository(store.engine)
    tokens = verified_tokens(settings, key)
    services.authenticate = authenticator(settings, key, client_active=clients.is_active, verified=tokens)
    services.authenticate_token = authenticator(settings, key, verified=tokens)
    services.client_enabled = client_enabled
    policy = load_policy(settings.policy_file) if settings.policy_file else None
    writer = BatchingAuditWriter(
        lambda events: write_audit_events(store, events), max_delay_ms=AUDIT_BATCH_MS, idle=services.activity.wait_idle
    )
    services.extras["audit_flush"] = writer.flush
    services.extras["guard"] = ConsentGuard(
        store,
        PolicyDecisionPoint(policy),
        audit=writer,
        on_obligations=BreakGlassNotifier(store),
        decisions=DecisionCache(redis_url=settings.redis_url),
    )
    services.extras["auth"] = TokenEndpoint(settings, clients, key, replay_guard(settings.redis_url), JwksCache())
    services.extras.setdefault("shutdown", []).append(writer.aclose)


def write_audit_events(store: Store, events: list[dict[str, Any]]) -> None:
    store_audit_events(store, events)


def demo_credentials(services: Services) -> list[dict[str, Any]]:
    """The ready-made demo clients (created once per database; same secrets on every start)."""
    endpoint = services.extras.get("auth")
    if endpoint is None:
        return []
    seed = meta_secret(services.store, "demo_client_seed")
    return demo_clients(ClientRepository(services.store.engine), seed=seed, token_endpoint=token_url(services.settings))


def install_components(app: FastAPI, services: Services) -> None:
    """Every stage that adds routes, listeners or workers to a serving gateway."""
    endpoint = services.extras.get("auth")
    if isinstance(endpoint, TokenEndpoint):
        app.include_router(auth_router(endpoint))
    intake_web.install(app, services, host=services.settings.mllp_host)
    export_web.install(services)
    case_management.install(app, services)
    ward_list_web.install(app, services)
    if services.settings.ward_list_push_enabled:
        ward_list_push.install(services)
    consumers = alerts_install.install(app, services)
    guard = services.extras.get("guard")
    if isinstance(guard, ConsentGuard):
        alerts_install.runtime_of(services).service.may_see = subscriber_visibility(guard, services.store)
    events.install(
        services,
        consumers,
        bus_options={
            "stream": services.settings.redis_stream,
            "claim_idle_ms": services.settings.redis_claim_idle_ms,
        }
        if services.settings.redis_url
        else None,
    )


def create_app(
    settings: Settings | None = None, services: Services | None = None, *, components: bool = True
) -> FastAPI:
    """The ASGI app. `components=False` serves the FHIR core alone (tests of one stage add theirs)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in services.extras.get("startup", []):
            await hook()
        yield
        for hook in reversed(services.extras.get("shutdown", [])):  # last started, first stopped
            await hook()

    app = FastAPI(title="care-gateway", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.services = services

    @app.get("/fhir/.well-known/smart-configuration", include_in_schema=False)
    async def smart_config() -> dict[str, Any]:
        return smart_configuration(settings)

    app.router.routes.extend(fhir_routes())
    if components:
        install_components(app, services)
    app.add_exception_handler(FhirError, fhir_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)

    app.add_middleware(CorrelationMiddleware, activity=services.activity)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        try:
            current = migrate.is_current(services.store.engine)
        except Exception as exc:  # the database is unreachable
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        if not current:
            return JSONResponse({"status": "unavailable", "migrations": "not current"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
