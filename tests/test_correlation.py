"""Every response carries the request's correlation id: the caller's `X-Request-ID`, or a new one."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from gateway.activity import Activity
from gateway.correlation import CorrelationMiddleware
from gateway.fhir.services import Services


async def test_a_given_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    resp = await client.get("/metadata", headers={"X-Request-ID": "req-abc"})
    assert resp.status_code == 200
    assert resp.headers.get_list("x-request-id") == ["req-abc"]


async def test_each_request_gets_an_id_of_its_own(client: httpx.AsyncClient) -> None:
    first = await client.get("/Patient/nobody")
    second = await client.post("/Patient", json={"resourceType": "Patient"})
    assert first.status_code == 404 and second.status_code == 201
    ids = [r.headers["x-request-id"] for r in (first, second)]
    assert all(len(i) == 32 for i in ids) and ids[0] != ids[1]


async def test_an_unusable_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    """A caller's id is logged and echoed only when it is a plain token of sane length: an id is
    not a place to smuggle a name (or a kilobyte of anything) into the logs."""
    for given in ("x" * 201, "Jane Smith 01/02/1950", "id\twith\ttabs"):
        resp = await client.get("/metadata", headers={"X-Request-ID": given})
        echoed = resp.headers["x-request-id"]
        assert echoed != given and len(echoed) == 32
    resp = await client.get("/metadata", headers={"X-Request-ID": "a1b2-C3_d4.e5:f6"})
    assert resp.headers["x-request-id"] == "a1b2-C3_d4.e5:f6"


async def test_a_request_is_in_flight_until_its_response_is_sent() -> None:
    """The audit writer waits for a gap between requests: the middleware says when one is being served."""
    activity = Activity()
    seen: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(activity.busy)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=CorrelationMiddleware(app, activity=activity))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as direct:
        assert (await direct.get("/")).status_code == 204
    assert seen == [1] and activity.busy == 0


async def test_the_gateway_counts_its_requests_in_the_services_activity(app: FastAPI, services: Services) -> None:
    seen: list[int] = []

    @app.get("/busy-probe")
    async def probe() -> dict[str, int]:
        seen.append(services.activity.busy)
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        assert (await c.get("/busy-probe")).status_code == 200
    assert seen == [1] and services.activity.busy == 0
