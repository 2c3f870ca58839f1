"""The pieces of a fully wired gateway test: a real uvicorn on loopback, a webhook receiver, token
clients, and the virtual-ward enrolment every presentation test starts from."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA, EXT_PAYLOAD_CONTENT
from gateway.codes import EPISODE_TYPE_SYSTEM, NHS_NUMBER_SYSTEM, TOPIC_PRESENTED, VIRTUAL_WARD
from gateway.consent.agreements import build_agreement


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


@dataclass
class Gateway:
    base: str
    fhir: str
    mllp_port: int
    secrets: dict[str, str]
    opened: list[httpx.Client] = field(default_factory=list)


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


@dataclass
class Enrolled:
    """Alice Parker on the virtual ward and her case manager's active id-only Subscription."""

    setup: httpx.Client
    case_app: httpx.Client
    hospital_patient: dict[str, Any]
    master: dict[str, Any]
    subscription: dict[str, Any]


def enrol_alice(gw: Gateway, hook: Webhook) -> Enrolled:
    """Alice (hospital number E1000001, linked to her NHS-number record) enrolled on the Northtown
    virtual ward under case manager Grace Okafor, an agreement letting the case-management service
    and the trust see her, and the case manager subscribed to presentations at `hook`."""
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
            "endpoint": hook.url,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
        },
    }
    created = case_app.post("/Subscription", json=sub)
    assert created.status_code == 201, created.text
    sub_id = created.json()["id"]
    wait_for(lambda: case_app.get(f"/Subscription/{sub_id}").json()["status"] == "active")
    return Enrolled(setup, case_app, hosp, master, sub)
