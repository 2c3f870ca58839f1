"""kill -9 of the gateway mid-delivery: every presentation of a case-managed person still reaches the
case manager's webhook at least once, and a repeat carries the event number it had the first time.

The webhook holds one notification open (receiver got it, gateway never heard back) while more
Encounters are committed behind it, then the gateway is SIGKILLed and restarted.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA, EXT_PAYLOAD_CONTENT
from gateway.codes import EPISODE_TYPE_SYSTEM, NHS_NUMBER_SYSTEM, TOPIC_PRESENTED, VIRTUAL_WARD
from tests.durability.conftest import Deployment, GatewayProcess, api_client, free_port, share_everything

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True)
class Notified:
    sub_id: str
    number: int
    encounters: tuple[str, ...]


@dataclass
class Webhook:
    """Records every event notification as (subscription, event number, encounters); can hold one open."""

    url: str = ""
    received: list[Notified] = field(default_factory=list)
    hold_next: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, bundle: dict[str, Any]) -> bool:
        params = bundle["entry"][0]["resource"]["parameter"]
        if next(p["valueCode"] for p in params if p["name"] == "type") != "event-notification":
            return False
        sub_id = next(p["valueReference"]["reference"] for p in params if p["name"] == "subscription").split("/")[-1]
        for p in params:
            if p["name"] != "notification-event":
                continue
            parts = p["part"]
            number = int(next(x["valueString"] for x in parts if x["name"] == "event-number"))
            context = [x["valueReference"]["reference"] for x in parts if x["name"] == "additional-context"]
            encounters = tuple("Encounter/" + r.split("Encounter/")[1] for r in context if "Encounter/" in r)
            with self.lock:
                self.received.append(Notified(sub_id, number, encounters))
        return True

    def encounters(self) -> set[str]:
        with self.lock:
            return {e for n in self.received for e in n.encounters}

    def numbers_by_encounter(self) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        with self.lock:
            for n in self.received:
                for e in n.encounters:
                    found.setdefault(e, set()).add(n.number)
        return found


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    async def receive(request: Request) -> Response:
        if hook.record(json.loads(await request.body())) and hook.hold_next.is_set():
            hook.hold_next.clear()
            hook.holding.set()
            while not hook.release.is_set():  # received, but the gateway never gets its 200
                await asyncio.sleep(0.02)
        return Response(status_code=200)

    port = free_port()
    config = uvicorn.Config(
        Starlette(routes=[Route("/hook", receive, methods=["POST"])]), port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    hook.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield hook
    finally:
        hook.release.set()
        server.should_exit = True
        thread.join(timeout=5)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def enrol(fhir: httpx.Client, nhs_number: str) -> str:
    """A case-managed person: Patient, case manager, team, active virtual-ward EpisodeOfCare."""
    patient = fhir.post(
        "/Patient", json={"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs_number}]}
    ).json()
    manager = {"resourceType": "Practitioner", "id": "cm-dur", "name": [{"family": "Okafor", "given": ["Grace"]}]}
    assert fhir.put("/Practitioner/cm-dur", json=manager).status_code in (200, 201)
    team = fhir.post(
        "/CareTeam",
        json={
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{patient['id']}"},
            "participant": [{"member": {"reference": "Practitioner/cm-dur"}}],
        },
    ).json()
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}], "text": "Durability ward"}],
        "patient": {"reference": f"Patient/{patient['id']}"},
        "managingOrganization": {"reference": "Organization/case-mgmt"},
        "period": {"start": "2026-11-01"},
        "careManager": {"reference": "Practitioner/cm-dur"},
        "team": [{"reference": f"CareTeam/{team['id']}"}],
    }
    assert fhir.post("/EpisodeOfCare", json=episode).status_code == 201
    return str(patient["id"])


def subscribe(fhir: httpx.Client, url: str) -> str:
    sub = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "durability",
        "criteria": TOPIC_PRESENTED,
        "_criteria": {
            "extension": [{"url": EXT_FILTER_CRITERIA, "valueString": "Communication?care-manager=Practitioner/cm-dur"}]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": url,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
        },
    }
    created = fhir.post("/Subscription", json=sub)
    assert created.status_code == 201, created.text
    sub_id = str(created.json()["id"])
    wait_for(lambda: fhir.get(f"/Subscription/{sub_id}").json()["status"] == "active", 15, "handshake")
    return sub_id


def present(fhir: httpx.Client, patient_id: str, n: int) -> str:
    """A new A&E presentation (a new visit each time: a new Encounter)."""
    encounter = {
        "resourceType": "Encounter",
        "status": "arrived",
        "class": {"system": ACT_CODE, "code": "EMER"},
        "identifier": [{"system": "urn:test:durability:visit", "value": f"visit-{n}"}],
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    created = fhir.post("/Encounter", json=encounter)
    assert created.status_code == 201, created.text
    return f"Encounter/{created.json()['id']}"


def assert_every_presentation_notified_once_per_number(webhook: Webhook, sub_id: str, sent: list[str]) -> None:
    by_encounter = webhook.numbers_by_encounter()
    assert set(sent) <= set(by_encounter), "a presentation was never notified"
    for encounter in sent:  # a duplicate is detectable: it carries the same event number
        assert len(by_encounter[encounter]) == 1, (encounter, by_encounter[encounter])
    numbers = sorted(n for nums in by_encounter.values() for n in nums)
    assert numbers == list(range(1, len(sent) + 1)), "event numbers must be unique and gap-free"
    assert {n.sub_id for n in webhook.received} == {sub_id}


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("deployment", ["sqlite"], indirect=True)
def test_kill_9_mid_delivery_embedded_every_alert_arrives(deployment: Deployment, webhook: Webhook) -> None:
    gw = deployment.process("a")
    gw.start()
    share_everything(gw)
    sent: list[str] = []
    with api_client(gw) as fhir:
        patient_id = enrol(fhir, "9990000018")
        sub_id = subscribe(fhir, webhook.url)
        for n in range(5):  # the path works before anything goes wrong
            sent.append(present(fhir, patient_id, n))
            time.sleep(0.05)
        wait_for(lambda: set(sent) <= webhook.encounters(), 15, "the first alerts")

        webhook.hold_next.set()
        sent.append(present(fhir, patient_id, 5))
        wait_for(webhook.holding.is_set, 15, "a notification in flight")
        for n in range(6, 15):  # committed while the receiver holds the one in flight: not yet delivered
            sent.append(present(fhir, patient_id, n))
            time.sleep(0.05)
    held = sent[5]
    gw.kill()
    webhook.release.set()

    gw.start()
    with api_client(gw) as fhir:
        for n in range(15, 20):
            sent.append(present(fhir, patient_id, n))
            time.sleep(0.05)
        wait_for(lambda: set(sent) <= webhook.encounters(), 20, "every alert after the restart")
        assert fhir.get("/Communication", params={"patient": patient_id, "_summary": "count"}).json()["total"] == 20
    assert_every_presentation_notified_once_per_number(webhook, sub_id, sent)
    assert sum(held in n.encounters for n in webhook.received) >= 2, "the one in flight was sent again"
    gw.kill()


REDIS_DB_URL = "redis://127.0.0.1:6379/11"
"""The bus's stream name (`gateway:events`) is not configurable from Settings, so these tests keep to
their own Redis database and delete only the gateway's keys in it."""


def clear_gateway_keys(url: str) -> None:
    from redis import Redis

    client = Redis.from_url(url)
    try:
        keys = [b"gateway:events", *client.scan_iter(match="cg:cm:*")]
        client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_deployment(deployment: Deployment) -> Iterator[Deployment]:
    clear_gateway_keys(REDIS_DB_URL)
    deployment.redis_url = REDIS_DB_URL
    try:
        yield deployment
    finally:
        for proc in deployment.processes:
            proc.kill()
        clear_gateway_keys(REDIS_DB_URL)


def start_all(*processes: GatewayProcess) -> None:
    for proc in processes:
        proc.start()


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(120)
@pytest.mark.parametrize("deployment", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_kill_9_one_of_two_redis_workers_every_alert_arrives(redis_deployment: Deployment, webhook: Webhook) -> None:
    dep = redis_deployment
    a, b = dep.process("a"), dep.process("b")
    a.start()
    share_everything(a)
    sent: list[str] = []
    with api_client(a) as fhir:
        patient_id = enrol(fhir, "9990000026")
        sub_id = subscribe(fhir, webhook.url)
        b.start()  # after the Subscription exists: B reads it at start-up
        for n in range(10):
            sent.append(present(fhir, patient_id, n))
            time.sleep(0.1)
        webhook.hold_next.set()
        for n in range(10, 30):
            sent.append(present(fhir, patient_id, n))
            time.sleep(0.1)
            if n == 15:
                b.kill()
                webhook.release.set()
            if n == 20:
                b.start()
        wait_for(lambda: set(sent) <= webhook.encounters(), 45, "every alert after the kill")
    assert_every_presentation_notified_once_per_number(webhook, sub_id, sent)
