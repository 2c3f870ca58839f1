"""The virtual-ward alert pipeline end to end: REST writes -> outbox -> consumers -> Flag, Communication,
Task and a rest-hook notification on a real webhook receiver (issue 5, items 1-4 and 7).

The bus is replaced by a pump that reads the store's outbox in seq order and calls the consumers,
which is the contract `gateway.events` honours; everything else is real (store on SQLite and
PostgreSQL, REST face, uvicorn receiver on loopback).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import gateway.fhir.operations.subscription_events
import gateway.fhir.operations.subscription_status
import gateway.fhir.operations.subscription_ws_token  # noqa: F401  (registers the operations)
from gateway.alerts.install import install
from gateway.alerts.pipeline import AlertPipeline
from gateway.alerts.reasoning import from_extension
from gateway.alerts.registry import EXT_VIRTUAL_WARD
from gateway.alerts.subscription_service import SubscriptionService
from gateway.alerts.subscriptions import utcnow
from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA, EXT_PAYLOAD_CONTENT
from gateway.codes import (
    ALERT_CODE_SYSTEM,
    EPISODE_TYPE_SYSTEM,
    NHS_NUMBER_SYSTEM,
    PRESENTATION_ALERT,
    TOPIC_PRESENTED,
    V3_ACT_CODE,
)
from gateway.fhir.services import Services
from gateway.identity.nhs_number import with_check_digit
from gateway.store.schema import outbox

NHS = with_check_digit("999004321")
ALERTS = f"{ALERT_CODE_SYSTEM}|{PRESENTATION_ALERT}"


@dataclass(frozen=True)
class Event:
    seq: int
    res_type: str
    res_id: str
    version_id: int
    method: str
    created_at: datetime


@dataclass
class Receiver:
    base: str
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        self.received[name] = []
        return f"{self.base}/hook/{name}"

    def events(self, name: str) -> list[tuple[int, str]]:
        """(event number, focus reference) of every event notification received on `name`."""
        found = []
        for bundle in self.received[name]:
            params = bundle["entry"][0]["resource"]["parameter"]
            for p in params:
                if p["name"] == "notification-event":
                    parts = {x["name"]: x for x in p["part"]}
                    focus = parts["focus"]["valueReference"]["reference"].split("/fhir/")[-1]
                    found.append((int(parts["event-number"]["valueString"]), focus))
        return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    async def hook(request: Request) -> Response:
        state.received[request.path_params["name"]].append(orjson.loads(await request.body()))
        return Response(status_code=200)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook/{name}", hook, methods=["POST"])]), port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "receiver did not start"
        time.sleep(0.01)
    state.base = f"http://127.0.0.1:{port}"
    yield state
    server.should_exit = True
    thread.join(timeout=5)


class Pump:
    """Feeds committed writes to the consumers in outbox order, until nothing new is written."""

    def __init__(self, services: Services, consumers: dict[str, Any]) -> None:
        self.services = services
        self.consumers = consumers
        self.seq = 0

    async def __call__(self) -> None:
        service: SubscriptionService = self.consumers["subscriptions"]
        while True:
            with self.services.store.engine.connect() as conn:
                rows = list(conn.execute(select(outbox).where(outbox.c.seq > self.seq).order_by(outbox.c.seq)))
            for row in rows:
                event = Event(row.seq, row.res_type, row.res_id, row.version_id, row.method, row.created_at)
                for consumer in self.consumers.values():
                    await consumer.handle(event)
                self.seq = row.seq
            await service.idle()
            if not rows:
                return


def subscription(endpoint: str, flt: str, content: str = "id-only") -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "virtual-ward alerts",
        "criteria": TOPIC_PRESENTED,
        "_criteria": {"extension": [{"url": EXT_FILTER_CRITERIA, "valueString": flt}]},
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": content}]},
            "header": ["Authorization: Bearer receiver-secret"],
        },
    }


def encounter(cls: str, patient: str = "Patient/hosp-1", status: str = "arrived", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": V3_ACT_CODE, "code": cls},
        "subject": {"reference": patient},
        "serviceProvider": {"reference": "Organization/hosp", "display": "General Hospital"},
        "period": {"start": "2025-03-01T02:00:00+00:00"},
        **extra,
    }


async def enrol(client: httpx.AsyncClient) -> None:
    people: list[dict[str, Any]] = [
        {"resourceType": "Organization", "id": "hosp", "name": "General Hospital"},
        {"resourceType": "Organization", "id": "community", "name": "Community Health"},
        {
            "resourceType": "Practitioner",
            "id": "cm",
            "name": [{"given": ["Casey"], "family": "Manager"}],
            "telecom": [{"system": "phone", "value": "0100 000 0001"}],
        },
        {
            "resourceType": "CareTeam",
            "id": "team",
            "status": "active",
            "telecom": [{"system": "phone", "value": "0100 000 0002"}],
        },
        {"resourceType": "Location", "id": "ward-north", "name": "North virtual ward"},
        {"resourceType": "Patient", "id": "cm-1", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": NHS}]},
        {
            "resourceType": "Patient",
            "id": "hosp-1",
            "identifier": [{"system": "https://hosp.example/mrn", "value": "H123"}],
            "link": [{"other": {"reference": "Patient/cm-1"}, "type": "seealso"}],
        },
        {
            "resourceType": "EpisodeOfCare",
            "id": "ep-1",
            "status": "active",
            "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": "virtual-ward"}]}],
            "patient": {"reference": "Patient/cm-1"},
            "managingOrganization": {"reference": "Organization/community"},
            "careManager": {"reference": "Practitioner/cm"},
            "team": [{"reference": "CareTeam/team"}],
            "period": {"start": "2025-01-01"},
            "extension": [
                {"url": EXT_VIRTUAL_WARD, "valueReference": {"reference": "Location/ward-north", "display": "North"}}
            ],
        },
    ]
    for resource in people:
        response = await client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource)
        assert response.status_code in (200, 201), response.text


async def test_presentation_alert_end_to_end(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    consumers = install(app, services)
    pump = Pump(services, consumers)
    pipeline: AlertPipeline = consumers["alerts"]
    await enrol(client)
    cm_hook, hosp_hook = receiver.url("cm"), receiver.url("hosp")
    cm_sub = await client.post(
        "/Subscription", json=subscription(cm_hook, "Communication?care-manager=Practitioner/cm")
    )
    hosp_sub = await client.post("/Subscription", json=subscription(hosp_hook, "organization=Organization/hosp"))
    assert cm_sub.status_code == 201 and cm_sub.json()["status"] == "requested"
    assert hosp_sub.status_code == 201
    await pump()
    assert await pipeline.registry.lookup(["cm-1"])
    cm_id = cm_sub.json()["id"]
    assert (await client.get(f"/Subscription/{cm_id}")).json()["status"] == "active"
    assert receiver.received["cm"][0]["entry"][0]["resource"]["parameter"][3]["valueCode"] == "handshake"

    # A&E attendance under the hospital number linked to the case-managed record
    first = (await client.post("/Encounter", json=encounter("EMER"))).json()
    await pump()
    flags = (await client.get("/Flag", params={"patient": "Patient/hosp-1", "status": "active"})).json()
    assert flags["total"] == 1
    assert "case manager Casey Manager, contact 0100 000 0002" in flags["entry"][0]["resource"]["code"]["text"]
    alerts = (await client.get("/Communication", params={"category": ALERTS, "patient": "Patient/cm-1"})).json()
    assert alerts["total"] == 1
    alert = alerts["entry"][0]["resource"]
    reasoning = from_extension(alert)
    assert reasoning is not None
    assert (reasoning.match_grade, reasoning.rule) == ("certain", "class:EMER")
    assert reasoning.resource == f"Encounter/{first['id']}/_history/1"
    assert reasoning.presenting_patient == "Patient/hosp-1"
    via = [p for e in alert["extension"] for p in e["extension"] if p["url"] == "match-via"]
    assert via[0]["valueString"] == "Patient/hosp-1 link seealso Patient/cm-1"
    assert receiver.events("cm") == [(1, f"Communication/{alert['id']}")]
    assert receiver.events("hosp") == [(1, f"Communication/{alert['id']}")]
    assert receiver.received["cm"][-1]["entry"][0]["resource"]["parameter"][2]["valueCode"] == "active"

    # the same encounter updated: nobody is alerted twice
    first["status"] = "in-progress"
    assert (await client.put(f"/Encounter/{first['id']}", json=first)).status_code == 200
    await pump()
    assert len(receiver.events("cm")) == 1
    assert (await client.get(f"/Communication/{alert['id']}")).json()["meta"]["versionId"] == "1"

    # a new encounter alerts again; an admission opens discharge planning
    second = (await client.post("/Encounter", json=encounter("EMER"))).json()
    await pump()
    admitted = (await client.post("/Encounter", json=encounter("IMP", patient="Patient/cm-1"))).json()
    await pump()
    assert [n for n, _ in receiver.events("cm")] == [1, 2, 3]
    tasks = (await client.get("/Task", params={"patient": "Patient/cm-1"})).json()
    assert tasks["total"] == 1
    task = tasks["entry"][0]["resource"]
    assert task["encounter"]["reference"] == f"Encounter/{admitted['id']}"
    assert task["owner"]["reference"] == "Practitioner/cm"

    # entered-in-error takes the second alert back, and says so (an update notification)
    second["status"] = "entered-in-error"
    await client.put(f"/Encounter/{second['id']}", json=second)
    await pump()
    retracted = (await client.get("/Communication", params={"category": ALERTS, "status": "entered-in-error"})).json()
    assert retracted["total"] == 1
    assert retracted["entry"][0]["resource"]["about"][0]["reference"] == f"Encounter/{second['id']}"
    assert receiver.events("cm")[-1] == (4, f"Communication/{retracted['entry'][0]['resource']['id']}")

    # closing the episode ends the Flags and stops the alerts
    episode = (await client.get("/EpisodeOfCare/ep-1")).json()
    episode["status"] = "finished"
    await client.put("/EpisodeOfCare/ep-1", json=episode)
    await pump()
    assert (await client.get("/Flag", params={"patient": "Patient/hosp-1", "status": "active"})).json()["total"] == 0
    assert (await client.get("/Flag", params={"status": "inactive"})).json()["total"] == 2
    await client.post("/Encounter", json=encounter("EMER"))
    await pump()
    assert len(receiver.events("cm")) == 4
    assert (await client.get("/Communication", params={"category": ALERTS})).json()["total"] == 3

    # catch-up: $status and $events
    status = (await client.get(f"/Subscription/{cm_id}/$status")).json()
    params = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
    assert params["events-since-subscription-start"]["valueString"] == "4"
    assert params["status"]["valueCode"] == "active"
    events = (await client.get(f"/Subscription/{cm_id}/$events", params={"eventsSinceNumber": "2"})).json()
    numbers = [
        int(part["valueString"])
        for p in events["entry"][0]["resource"]["parameter"]
        if p["name"] == "notification-event"
        for part in p["part"]
        if part["name"] == "event-number"
    ]
    assert numbers == [2, 3, 4]
    await consumers["subscriptions"].stop()


async def test_bad_subscription_is_refused_and_ws_token_issued(
    app: FastAPI, services: Services, client: httpx.AsyncClient
) -> None:
    consumers = install(app, services)
    bad = subscription("ftp://nowhere", "organization=Organization/hosp")
    refused = await client.post("/Subscription", json=bad)
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"

    ws = subscription("http://127.0.0.1:1/unused", "organization=Organization/hosp")
    ws["channel"] = {"type": "websocket", "payload": "application/fhir+json"}
    created = await client.post("/Subscription", json=ws)
    assert created.status_code == 201, created.text
    await Pump(services, consumers)()
    sub_id = created.json()["id"]
    assert (await client.get(f"/Subscription/{sub_id}")).json()["status"] == "active"
    token = (await client.post(f"/Subscription/{sub_id}/$get-ws-binding-token")).json()
    values = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in token["parameter"]}
    assert values["subscription"] == sub_id
    assert values["websocket-url"] == "ws://testserver/fhir/subscriptions/ws"
    assert services.extras["subscriptions"].tokens.verify(values["token"], now=utcnow()).subscriptions == (sub_id,)
