"""Wires the alert pipeline and topic subscriptions into one gateway process.

`install(app, services)` builds the registry (in memory, or Redis when `GATEWAY_REDIS_URL` is
set), the delivery machinery (rest-hook over httpx, websocket), the Subscription before-write
check, the websocket endpoint, and start-up / shut-down hooks; it returns the bus consumers for
`gateway.events.install`. The operations (`$status`, `$events`, `$get-ws-binding-token`) find
what they need in `services.extras["subscriptions"]` (a `SubscriptionRuntime`).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from gateway.alerts.pipeline import AlertPipeline
from gateway.alerts.registry import CaseManagedRegistry, InMemoryRegistry, RedisRegistry
from gateway.alerts.subscription_service import SubscriptionService
from gateway.alerts.subscriptions import (
    BindingTokens,
    Channel,
    ConnectionManager,
    Deliverer,
    EventRecord,
    ResourceResolver,
    RestHookChannel,
    SubscriptionStateRepository,
    WebSocketChannel,
    load_topics,
    repository_handshake,
    websocket_router,
)
from gateway.events.threads import in_thread
from gateway.fhir.errors import FhirError
from gateway.fhir.services import Services
from gateway.store.api import Store
from gateway.store.engine import is_sqlite
from gateway.store.meta_secrets import meta_secret
from gateway.types import JSON

WS_PATH = "/fhir/subscriptions/ws"


@dataclass(frozen=True)
class SubscriptionRuntime:
    """What the subscription operations need, kept in `services.extras["subscriptions"]`."""

    service: SubscriptionService
    repo: SubscriptionStateRepository
    deliverer: Deliverer
    tokens: BindingTokens
    manager: ConnectionManager
    websocket_url: str
    pipeline: AlertPipeline


def runtime_of(services: Services) -> SubscriptionRuntime:
    """The installed runtime; raises FhirError (not-supported) when alerts are not installed."""
    runtime = services.extras.get("subscriptions")
    if not isinstance(runtime, SubscriptionRuntime):
        raise FhirError("not-supported", "subscriptions are not enabled on this server", status=501)
    return runtime


def websocket_url(base_url: str) -> str:
    scheme, _, rest = base_url.rstrip("/").partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{WS_PATH}"


def _registry(services: Services) -> CaseManagedRegistry:
    if services.settings.redis_url:
        from redis.asyncio import Redis

        return RedisRegistry(Redis.from_url(services.settings.redis_url))
    return InMemoryRegistry()


def _resolver(store: Store) -> ResourceResolver:
    """Loads an event's focus for `full-resource` catch-up deliveries (current version; None if gone)."""

    async def resolve(event: EventRecord) -> JSON | None:
        def read() -> JSON | None:
            with store.reader() as uow:
                stored = uow.get(event.focus_type, event.focus_id)
            return stored.json() if stored is not None and not stored.deleted else None

        return await in_thread(read)

    return resolve


def install(app: FastAPI, services: Services) -> dict[str, Any]:
    """Build and mount everything; returns the consumers (`{"alerts": …, "subscriptions": …}`)."""
    store = services.store
    settings = services.settings
    topics = load_topics()
    repo = SubscriptionStateRepository(store.engine)
    rest_hook = RestHookChannel()
    manager = ConnectionManager()
    channels: dict[str, Channel] = {"rest-hook": rest_hook, "websocket": WebSocketChannel(manager)}
    # Several processes share a PostgreSQL database: each takes a delivery lease per subscription.
    owner = None if is_sqlite(store.engine) else f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
    deliverer = Deliverer(repo, channels, fhir_base=services.fhir_base, resolve=_resolver(store), lease_owner=owner)
    service = SubscriptionService(store, deliverer, repo, topics)
    store.before_write("Subscription", service.check)
    registry = _registry(services)
    pipeline = AlertPipeline(store, registry, service)
    tokens = BindingTokens(meta_secret(store, "ws_binding_secret"))
    handshake = repository_handshake(repo, fhir_base=services.fhir_base)
    app.include_router(websocket_router(manager, tokens, handshake=handshake, path=WS_PATH))
    services.extras["subscriptions"] = SubscriptionRuntime(
        service, repo, deliverer, tokens, manager, websocket_url(settings.base_url), pipeline
    )
    services.extras["alert_registry"] = registry

    async def startup() -> None:
        await pipeline.load_registry()
        await service.load()
        service.start()

    async def shutdown() -> None:
        await service.stop()
        await rest_hook.aclose()

    services.extras.setdefault("startup", []).append(startup)
    services.extras.setdefault("shutdown", []).append(shutdown)
    # Subscriptions first: a Subscription and an alert committed in one batch reach the new spec.
    return {"subscriptions": service, "alerts": pipeline}
