"""Fixtures for subscription tests: topics, a migrated SQLite store, and a real webhook receiver."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.alerts.subscriptions import SubscriptionStateRepository, Topic, load_topics
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade


@pytest.fixture(scope="session")
def topics() -> dict[str, Topic]:
    return load_topics()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def repo(engine: Engine) -> SubscriptionStateRepository:
    return SubscriptionStateRepository(engine)


@dataclass
class Hook:
    """One receiver path: fails its first `fail_first` requests (all of them if `always_fail`)."""

    fail_first: int = 0
    always_fail: bool = False
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    failures: int = 0


@dataclass
class Receiver:
    base: str
    hooks: dict[str, Hook]

    def add(self, name: str, **kwargs: Any) -> str:
        self.hooks[name] = Hook(**kwargs)
        return f"{self.base}/hook/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A real HTTP webhook receiver (uvicorn on 127.0.0.1) with per-path failure behaviour."""
    hooks: dict[str, Hook] = {}

    async def hook(request: Request) -> Response:
        state = hooks[request.path_params["name"]]
        body = orjson.loads(await request.body())
        if state.always_fail or state.failures < state.fail_first:
            state.failures += 1
            return Response(status_code=503)
        state.received.append((dict(request.headers), body))
        return Response(status_code=200)

    app = Starlette(routes=[Route("/hook/{name}", hook, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "receiver did not start"
        time.sleep(0.01)
    try:
        yield Receiver(f"http://127.0.0.1:{port}", hooks)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
