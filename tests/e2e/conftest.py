"""Fixtures of the end-to-end tests: a fully wired gateway (tokens, consent, intake over real
MLLP, events, alerts, subscriptions) on a real uvicorn, and a webhook receiver, both on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import build_services, create_app
from gateway.auth import ClientRepository
from gateway.settings import Settings
from tests.e2e.wiring import Gateway, Webhook, free_port, serve


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    async def receive(request: Request) -> Response:
        name = request.path_params.get("name", "case")
        target = hook.bundles if name == "case" else hook.others.setdefault(name, [])
        target.append(json.loads(await request.body()))
        return Response(status_code=200)

    port = free_port()
    routes = [Route("/hook", receive, methods=["POST"]), Route("/hook/{name}", receive, methods=["POST"])]
    server, thread = serve(Starlette(routes=routes), port)
    hook.url = f"http://127.0.0.1:{port}/hook"
    yield hook
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def gateway(tmp_path: Path, database: Any) -> Iterator[Gateway]:
    port, mllp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database.url,
        base_url=base,
        mllp_port=mllp_port,
        ward_list_push_enabled=False,
        log_level="WARNING",
    )
    services = build_services(settings)
    clients = ClientRepository(services.store.engine)
    secrets = {}
    for cid, org, role, scope in (
        ("setup", "Organization/case-mgmt", "case-manager", "system/*.cruds"),
        ("case-app", "Organization/case-mgmt", "case-manager", "system/*.rs system/Subscription.cruds"),
        ("hospital", "Organization/trust-rxx", "clinician", "system/*.rs system/Subscription.cruds"),
        ("council", "Organization/la-e09", "social-worker", "system/*.rs system/Subscription.cruds"),
    ):
        secrets[cid] = f"secret-{cid}-0123456789"
        clients.add(client_id=cid, name=cid, organization=org, role=role, scopes=scope.split(), secret=secrets[cid])
    server, thread = serve(create_app(settings, services), port)
    gw = Gateway(base, settings.fhir_base, mllp_port, secrets)
    yield gw
    for opened in gw.opened:
        opened.close()
    server.should_exit = True
    thread.join(timeout=10)
    services.store.engine.dispose()
