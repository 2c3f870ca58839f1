"""Shared fixtures: real SQLite and PostgreSQL stores, the ASGI app, and a live uvicorn server.

PostgreSQL tests each get a fresh schema in the `test` database (dropped afterwards), so runs
never see each other's data. If PostgreSQL or Redis is missing the tests fail; they never skip.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from gateway.app import build_services, create_app
from gateway.fhir.services import Services
from gateway.settings import Settings
from gateway.store.api import Store
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Database:
    url: str
    kind: str


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A migrated store on a fresh PostgreSQL schema (tests of PostgreSQL-only behaviour)."""
    engine = make_engine(pg_url)
    upgrade(engine)
    yield Store(engine, fhir_base="http://testserver/fhir")
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'gateway.db'}", "sqlite")
    return Database(request.getfixturevalue("pg_url"), "postgres")


def make_settings(tmp_path: Path, database_url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "base_url": "http://testserver",
        "log_json": True,
        "log_level": "WARNING",
        "auth_required": False,
        "mllp_port": 0,
        "ward_list_push_enabled": False,
        **extra,
    }
    return Settings(**values)  # type: ignore[arg-type]


def secured_gateway(tmp_path: Path, database_url: str, secret: str) -> tuple[Settings, Services, FastAPI]:
    """A gateway with tokens required, one client (`case-app` of Organization/case-mgmt, role
    case-manager, `system/*.cruds`, client secret `secret`) and one Patient `p1`."""
    from gateway.auth import ClientRepository

    settings = make_settings(tmp_path, database_url, auth_required=True)
    services = build_services(settings)
    ClientRepository(services.store.engine).add(
        client_id="case-app",
        name="case-app",
        organization="Organization/case-mgmt",
        role="case-manager",
        scopes=["system/*.cruds"],
        secret=secret,
    )
    with services.store.writer() as uow:
        uow.update({"resourceType": "Patient", "id": "p1", "name": [{"family": "Ashdown"}]})
    return settings, services, create_app(settings, services)


@pytest.fixture
def settings(tmp_path: Path, database: Database) -> Settings:
    return make_settings(tmp_path, database.url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build_services(settings)
    yield built
    built.store.engine.dispose()


@pytest.fixture
def app(settings: Settings, services: Services) -> FastAPI:
    """The FHIR core alone; tests of other stages install theirs (see the e2e tests for all)."""
    return create_app(settings, services, components=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver/fhir") as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    fhir_base: str
    app: FastAPI


@pytest.fixture
def live_server(tmp_path: Path, database: Database) -> Iterator[LiveServer]:
    """A real uvicorn on loopback, for clients that speak real HTTP (fhirpy)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, database.url, base_url=base)
    services = build_services(settings)
    app = create_app(settings, services, components=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(base, settings.fhir_base, app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        services.store.engine.dispose()
