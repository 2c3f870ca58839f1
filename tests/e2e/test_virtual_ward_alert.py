"""End to end, on the fully wired gateway (tokens, consent, intake, events, alerts, subscriptions):

an A&E registration (ADT A04 over MLLP) for a person on a virtual ward, known to the hospital by
their hospital number, reaches the case manager's webhook and websocket; the presenting hospital
sees the Flag; a repeated message alerts nobody twice.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA, EXT_PAYLOAD_CONTENT
from gateway.app import build_services, create_app
from gateway.auth import ClientRepository
from gateway.codes import EPISODE_TYPE_SYSTEM, NHS_NUMBER_SYSTEM, TOPIC_PRESENTED, VIRTUAL_WARD
from gateway.consent.agreements import build_agreement
from gateway.intake.mllp import send_mllp
from gateway.paths import FIXTURES_DIR
from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.02)
    return server, thread


@dataclass
class Webhook:
    url: str = ""
    bundles: list[dict[str, Any]] = field(default_factory=list)
    others: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def events(self, name: str = "case") -> list[int]:
        numbers = []
        for bundle in self.bundles if name == "case" else self.others.get(name, []):
            params = bundle["entry"][0]["resource"]["parameter"]
            if next(p["valueCode"] for p in params if p["name"] == "type") != "event-notification":
                continue
            for p in params:
                if p["name"] == "notification-event":
                    numbers += [int(x["valueString"]) for x in p["part"] if x["name"] == "event-number"]
        return numbers


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


@dataclass
class Gateway:
    base: str
    fhir: str
    mllp_port: int
    secrets: dict[str, str]
    opened: list[httpx.Client] = field(default_factory=list)


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


def client_for(gw: Gateway, cid: str) -> httpx.Client:
    token = httpx.post(f"{gw.base}/auth/token", data={"grant_type": "client_credentials"}, auth=(cid, gw.secrets[cid]))
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["expires_in"] <= 300 and "refresh_token" not in body
    client = httpx.Client(base_url=gw.fhir, headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10)
    gw.opened.append(client)
    return client


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a04_over_mllp_alerts_the_case_manager_and_the_hospital_once(gateway: Gateway, webhook: Webhook) -> None:
    gw = gateway
    assert httpx.get(f"{gw.fhir}/Patient").status_code == 401  # every FHIR endpoint needs a token
    assert httpx.get(f"{gw.fhir}/metadata").status_code == 200
    assert httpx.get(f"{gw.fhir}/.well-known/smart-configuration").json()["token_endpoint"] == f"{gw.base}/auth/token"

    setup = client_for(gw, "setup")
    agreement = build_agreement(
        id="isa-ward", recipients=["Organization/case-mgmt", "Organization/trust-rxx"], purposes=["TREAT"]
    )
    assert setup.put("/Basic/isa-ward", json=agreement).status_code == 201
    hospital_number = {"system": f"{gw.base}/source/northtown-trust/patient-id", "value": "E1000001"}
    hosp = setup.post("/Patient", json={"resourceType": "Patient", "identifier": [hospital_number]}).json()
    master = setup.post(
        "/Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}],
            "name": [{"family": "Parker", "given": ["Alice"]}],
            "link": [{"other": {"reference": f"Patient/{hosp['id']}"}, "type": "seealso"}],
        },
    ).json()
    setup.put(
        "/Practitioner/cm-okafor",
        json={
            "resourceType": "Practitioner",
            "id": "cm-okafor",
            "name": [{"family": "Okafor", "given": ["Grace"]}],
            "telecom": [{"system": "phone", "value": "07700900101"}],
        },
    )
    team = setup.post(
        "/CareTeam",
        json={
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{master['id']}"},
            "participant": [{"member": {"reference": "Practitioner/cm-okafor"}}],
        },
    ).json()
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}], "text": "Northtown virtual ward"}],
        "patient": {"reference": f"Patient/{master['id']}"},
        "managingOrganization": {"reference": "Organization/case-mgmt"},
        "period": {"start": "2026-07-01"},  # before the A04 in the fixture (2026-07-14)
        "careManager": {"reference": "Practitioner/cm-okafor"},
        "team": [{"reference": f"CareTeam/{team['id']}"}],
    }
    assert setup.post("/EpisodeOfCare", json=episode).status_code == 201

    case_app = client_for(gw, "case-app")
    sub = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "virtual ward presentations",
        "criteria": TOPIC_PRESENTED,
        "_criteria": {
            "extension": [
                {"url": EXT_FILTER_CRITERIA, "valueString": "Communication?care-manager=Practitioner/cm-okafor"}
            ]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": webhook.url,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
        },
    }
    created = case_app.post("/Subscription", json=sub)
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]
    wait_for(lambda: case_app.get(f"/Subscription/{sub_id}").json()["status"] == "active")

    # the council (no agreement) subscribes to the same person: it must never be told of the presentation
    council = client_for(gw, "council")
    nosy = {**sub, "channel": {**sub["channel"], "endpoint": webhook.url + "/council"}}
    nosy_id = council.post("/Subscription", json=nosy).json()["id"]
    wait_for(lambda: council.get(f"/Subscription/{nosy_id}").json()["status"] == "active")

    ws_sub = {**sub, "channel": {"type": "websocket", "payload": "application/fhir+json"}}
    ws_id = case_app.post("/Subscription", json=ws_sub).json()["id"]
    wait_for(lambda: case_app.get(f"/Subscription/{ws_id}").json()["status"] == "active")
    token_params = case_app.post(f"/Subscription/{ws_id}/$get-ws-binding-token").json()["parameter"]
    ws_token = next(p["valueString"] for p in token_params if p["name"] == "token")
    ws_url = next(p.get("valueUrl") or p.get("valueString") for p in token_params if p["name"] == "websocket-url")

    ws_messages: list[dict[str, Any]] = []

    async def listen() -> None:
        async with websockets.connect(ws_url) as ws:
            await ws.send(f"bind-with-token {ws_token}")
            deadline = time.time() + 15
            while time.time() < deadline:
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
                except TimeoutError:
                    continue
                ws_messages.append(msg)
                kinds = [p.get("valueCode") for p in msg["entry"][0]["resource"]["parameter"] if p["name"] == "type"]
                if "event-notification" in kinds:
                    return

    listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    listener.start()
    time.sleep(0.5)  # bound before the presentation

    message = (FIXTURES_DIR / "hl7v2" / "adt_a04_epic_v24_enhanced.hl7").read_bytes()
    ack = asyncio.run(send_mllp("127.0.0.1", gw.mllp_port, message, timeout=10))
    assert b"MSA|CA|EPC20260714093512001" in ack

    wait_for(lambda: webhook.events() == [1])
    listener.join(timeout=15)
    assert any(
        p.get("valueCode") == "event-notification"
        for m in ws_messages
        for p in m["entry"][0]["resource"]["parameter"]
        if p["name"] == "type"
    )

    hospital = client_for(gw, "hospital")
    flags = hospital.get("/Flag", params={"patient": hosp["id"], "status": "active"}).json()
    assert flags["total"] == 1
    assert "Okafor" in flags["entry"][0]["resource"]["code"]["text"]
    alerts = case_app.get("/Communication", params={"patient": master["id"]}).json()
    assert alerts["total"] == 1

    # the same message again: the same ACK, nothing new written, nobody alerted twice
    again = asyncio.run(send_mllp("127.0.0.1", gw.mllp_port, message, timeout=10))
    assert again == ack
    time.sleep(1.5)
    assert webhook.events() == [1]
    assert hospital.get("/Flag", params={"patient": hosp["id"]}).json()["total"] == 1

    # an organisation with no agreement sees nothing of this person, by search or by subscription
    assert webhook.events("council") == []
    assert council.get("/Patient").json()["total"] == 0
    assert council.get("/Flag").json()["total"] == 0


def test_the_hl7_trigger_is_recorded_in_why_the_alert_fired(gateway: Gateway, webhook: Webhook) -> None:
    """The reasoning names the ADT trigger (from the intake's Provenance), not just the class."""
    gw = gateway
    setup = client_for(gw, "setup")
    agreement = build_agreement(id="isa-ward", recipients=["Organization/case-mgmt"], purposes=["TREAT"])
    setup.put("/Basic/isa-ward", json=agreement)
    master = setup.post(
        "/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}]},
    ).json()
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
        "patient": {"reference": f"Patient/{master['id']}"},
        "period": {"start": "2026-07-01"},
        "careManager": {"reference": "Practitioner/cm-okafor"},
        "team": [{"reference": "CareTeam/t1"}],
    }
    setup.post("/EpisodeOfCare", json=episode)
    time.sleep(0.5)  # the registry learns of the episode from the event bus
    message = (FIXTURES_DIR / "hl7v2" / "adt_a04_epic_v24_enhanced.hl7").read_bytes()
    asyncio.run(send_mllp("127.0.0.1", gw.mllp_port, message, timeout=10))

    def alerted() -> bool:
        return bool(setup.get("/Communication", params={"patient": master["id"]}).json().get("entry"))

    wait_for(alerted)
    note = setup.get("/Communication", params={"patient": master["id"]}).json()["entry"][0]["resource"]
    assert "A04" in json.dumps(note)
