"""Delivery channels: how one notification Bundle reaches a subscriber.

A channel either returns (delivered) or raises `DeliveryError`. `ChannelUnavailable` says there is
nobody to deliver to right now (a websocket subscription with no bound socket): the event stays in
the log for `$events` but the subscription is not pushed towards `error` for it.
"""

from __future__ import annotations

import urllib.request
from typing import Protocol

import httpx
import orjson

from gateway.alerts.subscriptions.backport import FHIR_JSON
from gateway.alerts.subscriptions.hookpost import HookPoster, HookPostError, target_of
from gateway.alerts.subscriptions.spec import SubscriptionSpec
from gateway.types import JSON


class DeliveryError(Exception):
    """A notification was not delivered; the message is safe to log and to store (no content)."""


class ChannelUnavailable(DeliveryError):
    """No receiver is connected; try again when one is."""


class Channel(Protocol):
    async def send(self, spec: SubscriptionSpec, bundle: JSON) -> None:
        """Deliver `bundle` to the subscriber of `spec`, or raise `DeliveryError`."""
        ...


class RestHookChannel:
    """POSTs notifications as `application/fhir+json` with the subscription's own headers.

    Any 2xx is delivered; redirects are not followed (a subscriber must name its real endpoint,
    and following them would let an endpoint bounce the gateway elsewhere).

    Plain http(s) endpoints go through `HookPoster` (h11 on asyncio streams with its own small pool:
    httpx's layers cost as much GIL per notification as writing the alert). httpx stays for an
    injected client (tests), for proxies from the environment (which httpx honours), for
    credentials in the URL and for URLs that need percent-encoding.
    """

    def __init__(self, client: httpx.AsyncClient | None = None, *, default_timeout: float = 10.0) -> None:
        self._client = client
        self._default_timeout = default_timeout
        self._poster = HookPoster() if client is None and not urllib.request.getproxies() else None

    async def send(self, spec: SubscriptionSpec, bundle: JSON) -> None:
        if not spec.endpoint:
            raise DeliveryError("subscription has no endpoint")
        timeout = float(spec.timeout) if spec.timeout else self._default_timeout
        target = target_of(spec.endpoint) if self._poster is not None else None
        if self._poster is not None and target is not None:
            named = {n: v for n, v in spec.headers if n.lower() != "content-type"}
            fields = [*named.items(), ("Content-Type", FHIR_JSON)]
            try:
                status = await self._poster.post(*target, fields, orjson.dumps(bundle), timeout=timeout)
            except TimeoutError as exc:
                raise DeliveryError(f"timeout after {timeout:g} s ({type(exc).__name__})") from exc
            except HookPostError as exc:
                raise DeliveryError(f"transport error ({exc})") from exc
            if not 200 <= status < 300:
                raise DeliveryError(f"endpoint answered HTTP {status}")
            return
        headers = {name: value for name, value in spec.headers}
        headers["Content-Type"] = FHIR_JSON
        if self._client is None:
            self._client = httpx.AsyncClient()
        try:
            response = await self._client.post(
                spec.endpoint,
                content=orjson.dumps(bundle),
                headers=headers,
                timeout=timeout,
                follow_redirects=False,
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timeout after {timeout:g} s ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"transport error ({type(exc).__name__})") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"endpoint answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        if self._poster is not None:
            await self._poster.aclose()
        if self._client is not None:
            await self._client.aclose()
