"""The websocket channel: binding tokens, `bind-with-token`, handshake and notifications on the socket."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, WebSocket
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters
from websockets.asyncio.client import connect

from gateway.alerts.subscriptions import (
    DEFAULT_WS_PATH,
    BindingTokens,
    ConnectionManager,
    Deliverer,
    EventFocus,
    SubscriptionSpec,
    SubscriptionStateRepository,
    WebSocketChannel,
    binding_token_parameters,
    repository_handshake,
    utcnow,
    websocket_router,
)
from gateway.codes import TOPIC_PRESENTED
from gateway.fhir.errors import FhirError

from .conftest import free_port

BASE = "http://gw.test/fhir"
NOW = datetime(2025, 3, 1, 9, 0, 0)
SECRET = b"0123456789abcdef0123456789abcdef"
SPEC = SubscriptionSpec(
    id="ws1", status="requested", topic=TOPIC_PRESENTED, channel_type="websocket", content="id-only"
)


def test_tokens_round_trip_and_refuse_tampering() -> None:
    tokens = BindingTokens(SECRET, ttl=timedelta(seconds=60))
    issued = tokens.issue(["ws1", "ws2"], "client-a", now=NOW)
    checked = tokens.verify(issued.token, now=NOW + timedelta(seconds=59))
    assert (checked.subscriptions, checked.client_id) == (("ws1", "ws2"), "client-a")
    with pytest.raises(FhirError, match="expired"):
        tokens.verify(issued.token, now=NOW + timedelta(seconds=60))
    body, _, sig = issued.token.partition(".")
    for forged in (f"{body}x.{sig}", f"{body}.{sig[:-2]}AA", "garbage", ""):
        with pytest.raises(FhirError) as caught:
            tokens.verify(forged, now=NOW)
        assert caught.value.status == 401
    with pytest.raises(FhirError):
        BindingTokens(b"other-secret-of-16+bytes").verify(issued.token, now=NOW)


def test_binding_token_parameters_shape() -> None:
    token = BindingTokens(SECRET).issue(["ws1"], "client-a", now=NOW)
    params = binding_token_parameters(token, "ws://gw.test/subscriptions/ws")
    Parameters.model_validate(params)
    by_name = {p["name"]: p for p in params["parameter"]}
    assert by_name["expiration"]["valueDateTime"] == "2025-03-01T09:02:00.000Z"
    assert by_name["subscription"]["valueString"] == "ws1"
    assert by_name["websocket-url"]["valueUrl"] == "ws://gw.test/subscriptions/ws"


class App:
    def __init__(self, repo: SubscriptionStateRepository) -> None:
        self.repo = repo
        self.manager = ConnectionManager()
        self.tokens = BindingTokens(SECRET)
        self.deliverer = Deliverer(repo, {"websocket": WebSocketChannel(self.manager)}, fhir_base=BASE)
        self.app = FastAPI()

        def client_of(ws: WebSocket) -> str | None:
            return ws.headers.get("x-client")

        self.app.include_router(
            websocket_router(
                self.manager, self.tokens, handshake=repository_handshake(repo, fhir_base=BASE), client_of=client_of
            )
        )

        @self.app.post("/publish/{res_id}")
        async def publish(res_id: str) -> dict[str, Any]:
            return {"number": await self.deliverer.publish(SPEC, EventFocus("Communication", res_id))}

        @self.app.post("/activate")
        async def activate() -> dict[str, Any]:
            return {"status": (await self.deliverer.activate(SPEC)).status}


@dataclass
class Served:
    app: App
    http: str
    ws: str


@pytest.fixture
def served(repo: SubscriptionStateRepository) -> Iterator[Served]:
    """The app on a real uvicorn on 127.0.0.1, so the socket and the publisher share its event loop."""
    built = App(repo)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(built.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield Served(built, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}{DEFAULT_WS_PATH}")
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def params_of(bundle: dict[str, Any]) -> dict[str, Any]:
    Bundle.model_validate(bundle)
    return {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}


def token_for(served: Served, client_id: str) -> str:
    return served.app.tokens.issue(["ws1"], client_id, now=utcnow()).token


async def test_bind_handshake_and_notifications(served: Served, repo: SubscriptionStateRepository) -> None:
    async with httpx.AsyncClient(base_url=served.http) as http:
        assert (await http.post("/activate")).json() == {"status": "active"}  # websocket: active at once
        assert (await http.post("/publish/c0")).json() == {"number": 1}  # nobody bound: kept, no error
        state = repo.get("ws1")
        assert state is not None and state.status == "active" and state.error_count == 0
        async with connect(served.ws, additional_headers={"x-client": "client-a"}) as ws:
            await ws.send(f"bind-with-token {token_for(served, 'client-a')}")
            handshake = params_of(orjson.loads(await ws.recv()))
            assert handshake["type"]["valueCode"] == "handshake"
            assert handshake["events-since-subscription-start"]["valueString"] == "1"
            assert served.app.manager.bound("ws1") == 1
            assert (await http.post("/publish/c1")).json() == {"number": 2}
            event = params_of(orjson.loads(await ws.recv()))
            assert event["type"]["valueCode"] == "event-notification"
            parts = {p["name"]: p for p in event["notification-event"]["part"]}
            assert parts["event-number"]["valueString"] == "2"
            assert parts["focus"]["valueReference"]["reference"] == f"{BASE}/Communication/c1"
        assert [e.number for e in repo.undelivered("ws1")] == [1]  # only the one sent while unbound
        for _ in range(100):  # the server notices the close on its own loop
            if served.app.manager.bound("ws1") == 0:
                break
            await asyncio.sleep(0.01)
        assert served.app.manager.bound("ws1") == 0


async def test_bad_messages_get_an_operation_outcome(served: Served) -> None:
    others = token_for(served, "client-b")
    async with connect(served.ws, additional_headers={"x-client": "client-a"}) as ws:
        for message, code in [
            ("bind-with-token nonsense", "login"),
            (f"bind-with-token {others}", "forbidden"),
            ("hello", "invalid"),
        ]:
            await ws.send(message)
            outcome = orjson.loads(await ws.recv())
            assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == code
        assert served.app.manager.bound("ws1") == 0


async def test_unbind_stops_delivery(served: Served, repo: SubscriptionStateRepository) -> None:
    token = token_for(served, "client-a")
    async with httpx.AsyncClient(base_url=served.http) as http:
        await http.post("/activate")
        async with connect(served.ws) as ws:
            await ws.send(f"bind-with-token {token}")
            await ws.recv()
            await ws.send(f"unbind-with-token {token}")
            await ws.send("ping")  # answered in order, so the unbind has been handled
            await ws.recv()
            assert served.app.manager.bound("ws1") == 0
            assert (await http.post("/publish/c1")).json() == {"number": 1}
    assert [e.number for e in repo.undelivered("ws1")] == [1]
