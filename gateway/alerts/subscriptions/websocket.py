"""The websocket channel: `$get-ws-binding-token` tokens, bound sockets, and the endpoint router.

Flow (R5 Backport IG): the client calls `Subscription/$get-ws-binding-token`, opens the websocket
and sends `bind-with-token <token>`; the gateway answers with a handshake Bundle per subscription
and from then on pushes every notification Bundle to the socket (`unbind-with-token <token>`
stops it). A notification counts as delivered once written to at least one bound socket.

Tokens are HMAC-signed (subscription ids, client id, expiry) rather than kept in memory, so a token
issued by one gateway process binds on another behind the same load balancer. They are short-lived
and only open a binding; the binding then lasts as long as the socket.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from gateway.alerts.subscriptions.channels import ChannelUnavailable
from gateway.alerts.subscriptions.deliverer import utcnow
from gateway.alerts.subscriptions.notifications import instant, notification_bundle
from gateway.alerts.subscriptions.repository import SubscriptionStateRepository
from gateway.alerts.subscriptions.spec import SubscriptionSpec
from gateway.fhir.errors import FhirError, forbidden, invalid, unauthorized
from gateway.types import JSON

log = structlog.get_logger(__name__)

DEFAULT_WS_PATH = "/subscriptions/ws"
Handshake = Callable[[str], Awaitable[JSON | None]]
"""Builds the handshake Bundle for a subscription id, or None when it is not known."""


@dataclass(frozen=True)
class BindingToken:
    token: str
    subscriptions: tuple[str, ...]
    client_id: str
    expires: datetime  # naive UTC


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BindingTokens:
    """Issues and checks websocket binding tokens, bound to subscription ids and the asking client."""

    def __init__(self, secret: bytes, *, ttl: timedelta = timedelta(minutes=2)) -> None:
        if len(secret) < 16:
            raise ValueError("binding token secret must be at least 16 bytes")
        self._secret = secret
        self._ttl = ttl

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())

    def issue(self, sub_ids: Sequence[str], client_id: str, *, now: datetime) -> BindingToken:
        """A token for `sub_ids` (already checked: websocket channel, visible to `client_id`)."""
        if not sub_ids:
            raise invalid("a binding token needs at least one subscription id", ["id"])
        expires = now.replace(microsecond=0) + self._ttl
        payload = {
            "s": list(sub_ids),
            "c": client_id,
            "e": int(expires.replace(tzinfo=UTC).timestamp()),
            "n": secrets.token_urlsafe(8),
        }
        body = _b64(orjson.dumps(payload))
        return BindingToken(f"{body}.{self._sign(body)}", tuple(sub_ids), client_id, expires)

    def verify(self, token: str, *, now: datetime) -> BindingToken:
        """The token's binding; raises `FhirError` (login) when forged, malformed or expired."""
        body, _, signature = token.strip().partition(".")
        if not body or not hmac.compare_digest(signature, self._sign(body)):
            raise unauthorized("binding token is not valid")
        try:
            payload = orjson.loads(_unb64(body))
            subs = tuple(str(s) for s in payload["s"])
            client = str(payload["c"])
            expires = datetime.fromtimestamp(int(payload["e"]), UTC).replace(tzinfo=None)
        except (ValueError, KeyError, TypeError) as exc:
            raise unauthorized("binding token is not valid") from exc
        if expires <= now:
            raise unauthorized("binding token has expired")
        return BindingToken(token.strip(), subs, client, expires)


def binding_token_parameters(token: BindingToken, websocket_url: str) -> JSON:
    """The `$get-ws-binding-token` output `Parameters`."""
    params: list[JSON] = [
        {"name": "token", "valueString": token.token},
        {"name": "expiration", "valueDateTime": instant(token.expires)},
    ]
    params.extend({"name": "subscription", "valueString": s} for s in token.subscriptions)
    params.append({"name": "websocket-url", "valueUrl": websocket_url})
    return {"resourceType": "Parameters", "parameter": params}


class ConnectionManager:
    """Which open sockets are bound to which subscriptions, in this process."""

    def __init__(self) -> None:
        self._by_sub: dict[str, set[WebSocket]] = {}
        self._by_socket: dict[WebSocket, set[str]] = {}

    def bind(self, ws: WebSocket, sub_ids: Sequence[str]) -> None:
        for sub_id in sub_ids:
            self._by_sub.setdefault(sub_id, set()).add(ws)
            self._by_socket.setdefault(ws, set()).add(sub_id)

    def unbind(self, ws: WebSocket, sub_ids: Sequence[str] | None = None) -> None:
        for sub_id in list(self._by_socket.get(ws, set()) if sub_ids is None else sub_ids):
            sockets = self._by_sub.get(sub_id)
            if sockets is not None:
                sockets.discard(ws)
                if not sockets:
                    del self._by_sub[sub_id]
            self._by_socket.get(ws, set()).discard(sub_id)
        if not self._by_socket.get(ws):
            self._by_socket.pop(ws, None)

    def bound(self, sub_id: str) -> int:
        """How many sockets are bound to `sub_id`."""
        return len(self._by_sub.get(sub_id, ()))

    async def send(self, sub_id: str, bundle: JSON) -> int:
        """Write `bundle` to every socket bound to `sub_id`; returns how many took it."""
        text = orjson.dumps(bundle).decode()
        sent = 0
        for ws in list(self._by_sub.get(sub_id, ())):
            try:
                await ws.send_text(text)
                sent += 1
            except Exception:  # a socket that cannot take a frame is gone: forget it
                self.unbind(ws)
        return sent


class WebSocketChannel:
    """Delivery channel over bound websockets; no bound socket is `ChannelUnavailable`."""

    def __init__(self, manager: ConnectionManager) -> None:
        self._manager = manager

    async def send(self, spec: SubscriptionSpec, bundle: JSON) -> None:
        if await self._manager.send(spec.id, bundle) == 0:
            raise ChannelUnavailable("no websocket bound")


def repository_handshake(
    repo: SubscriptionStateRepository, *, fhir_base: str, clock: Callable[[], datetime] = utcnow
) -> Handshake:
    """A `Handshake` that reports the subscription's current status from the repository."""

    async def handshake(sub_id: str) -> JSON | None:
        state = await run_in_threadpool(repo.get, sub_id)
        if state is None:
            return None
        return notification_bundle(state, "handshake", fhir_base=fhir_base, content="empty", now=clock())

    return handshake


def websocket_router(
    manager: ConnectionManager,
    tokens: BindingTokens,
    *,
    handshake: Handshake,
    path: str = DEFAULT_WS_PATH,
    client_of: Callable[[WebSocket], str | None] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> APIRouter:
    """An `APIRouter` with the subscription websocket endpoint at `path`.

    `client_of` names the authenticated client of a socket (None when the connection itself is not
    authenticated); a token issued to another client is refused.
    """
    router = APIRouter()

    async def reply_error(ws: WebSocket, error: FhirError) -> None:
        await ws.send_text(orjson.dumps(error.outcome()).decode())

    async def bind(ws: WebSocket, argument: str, *, unbind: bool) -> None:
        binding = tokens.verify(argument, now=clock())
        asker = client_of(ws) if client_of is not None else None
        if asker is not None and asker != binding.client_id:
            raise forbidden("binding token was issued to another client")
        if unbind:
            manager.unbind(ws, binding.subscriptions)
            return
        manager.bind(ws, binding.subscriptions)
        log.info("subscription.ws_bound", subscriptions=list(binding.subscriptions), client=binding.client_id)
        for sub_id in binding.subscriptions:
            bundle = await handshake(sub_id)
            if bundle is not None:
                await ws.send_text(orjson.dumps(bundle).decode())

    @router.websocket(path)
    async def subscription_socket(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                command, _, argument = (await ws.receive_text()).strip().partition(" ")
                try:
                    if command in ("bind-with-token", "unbind-with-token"):
                        await bind(ws, argument.strip(), unbind=command == "unbind-with-token")
                    else:
                        raise invalid(f"unknown message {command[:32]!r}: use bind-with-token <token>")
                except FhirError as exc:
                    await reply_error(ws, exc)
        except WebSocketDisconnect:
            pass
        finally:
            manager.unbind(ws)

    return router
