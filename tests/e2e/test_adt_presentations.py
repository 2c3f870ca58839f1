"""End to end over the real MLLP socket: the ADT triggers beyond A04 (issue 5, item 2).

A05 (pre-admission) alerts; A06 (outpatient -> inpatient) alerts on the class change and opens
discharge planning; A07 (inpatient -> outpatient) alerts nobody again; A11 (cancel admit) takes
the alert back. Same fully wired gateway as `test_virtual_ward_alert` (tokens, consent, intake,
events, alerts, subscriptions); the messages are the A04 fixture with another trigger and class.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from gateway.alerts.subscriptions.backport import EXT_FILTER_CRITERIA, EXT_PAYLOAD_CONTENT
from gateway.codes import EPISODE_TYPE_SYSTEM, NHS_NUMBER_SYSTEM, TOPIC_PRESENTED, VIRTUAL_WARD
from gateway.consent.agreements import build_agreement
from gateway.intake.mllp import send_mllp
from gateway.paths import FIXTURES_DIR
from tests.e2e.test_virtual_ward_alert import Gateway, Webhook, client_for, gateway, wait_for, webhook

__all__ = ["gateway", "webhook"]  # the fixtures, shared with test_virtual_ward_alert

A04 = (FIXTURES_DIR / "hl7v2" / "adt_a04_epic_v24_enhanced.hl7").read_text()
STRUCTURE = {"A01": "ADT_A01", "A04": "ADT_A01", "A05": "ADT_A05", "A06": "ADT_A06", "A07": "ADT_A06", "A11": "ADT_A09"}


def adt(trigger: str, patient_class: str, *, control: str, visit: str = "V20260714001") -> bytes:
    """The A04 fixture as another trigger: MSH-9, EVN-1, MSH-10, PV1-2 (class) and PV1-19 (visit)."""
    text = (
        A04.replace("ADT^A04^ADT_A01", f"ADT^{trigger}^{STRUCTURE[trigger]}")
        .replace("EVN|A04|", f"EVN|{trigger}|")
        .replace("EPC20260714093512001", control)
        .replace("PV1|1|E|", f"PV1|1|{patient_class}|")
        .replace("V20260714001^", f"{visit}^")
    )
    return text.encode()


def send(gw: Gateway, message: bytes) -> bytes:
    ack = asyncio.run(send_mllp("127.0.0.1", gw.mllp_port, message, timeout=10))
    assert b"MSA|CA|" in ack or b"MSA|AA|" in ack, ack
    return ack


def enrol(gw: Gateway, hook: Webhook) -> tuple[httpx.Client, dict[str, Any]]:
    """Alice Parker on the virtual ward (hospital number E1000001 linked), and the case manager's
    id-only Subscription, active. Returns the case-management client and the hospital Patient."""
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
            "link": [{"other": {"reference": f"Patient/{hosp['id']}"}, "type": "seealso"}],
        },
    ).json()
    setup.put("/Practitioner/cm-okafor", json={"resourceType": "Practitioner", "id": "cm-okafor"})
    team = setup.post("/CareTeam", json={"resourceType": "CareTeam", "status": "active"}).json()
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
        "patient": {"reference": f"Patient/{master['id']}"},
        "managingOrganization": {"reference": "Organization/case-mgmt"},
        "period": {"start": "2026-07-01"},
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
    sub_id = case_app.post("/Subscription", json=sub).json()["id"]
    wait_for(lambda: case_app.get(f"/Subscription/{sub_id}").json()["status"] == "active")
    return case_app, {"hospital": hosp, "master": master}


def alerts(client: httpx.Client, patient: dict[str, Any]) -> list[dict[str, Any]]:
    found = client.get("/Communication", params={"patient": patient["id"]}).json()
    return [e["resource"] for e in found.get("entry") or []]


def settle() -> None:
    """Long enough for a write that should NOT alert to have alerted if it were going to."""
    time.sleep(1.5)


def test_a05_pre_admission_over_mllp_alerts_the_case_manager(gateway: Gateway, webhook: Webhook) -> None:
    case_app, people = enrol(gateway, webhook)
    send(gateway, adt("A05", "P", control="A05CTL0001", visit="V20260714005"))

    wait_for(lambda: webhook.events() == [1])
    [alert] = alerts(case_app, people["master"])
    assert "adt:A05" in json.dumps(alert)
    assert alert["status"] != "entered-in-error"


def test_a06_to_inpatient_over_mllp_alerts_once_and_opens_discharge_planning(
    gateway: Gateway, webhook: Webhook
) -> None:
    case_app, people = enrol(gateway, webhook)
    send(gateway, adt("A04", "O", control="A06CTL0001", visit="V20260714006"))  # outpatient: no presentation
    settle()
    assert webhook.events() == []

    send(gateway, adt("A06", "I", control="A06CTL0002", visit="V20260714006"))
    wait_for(lambda: webhook.events() == [1])
    [alert] = alerts(case_app, people["master"])
    assert "class-change:AMB->IMP" in json.dumps(alert)
    tasks = case_app.get("/Task", params={"patient": people["master"]["id"]}).json()
    assert tasks["total"] == 1  # an admission opens early discharge planning

    send(gateway, adt("A06", "I", control="A06CTL0003", visit="V20260714006"))  # repeated: nobody twice
    settle()
    assert webhook.events() == [1]


def test_a07_alerts_nobody_again_and_a11_takes_the_alert_back_over_mllp(gateway: Gateway, webhook: Webhook) -> None:
    case_app, people = enrol(gateway, webhook)
    hospital = client_for(gateway, "hospital")
    send(gateway, adt("A01", "I", control="A07CTL0001", visit="V20260714007"))
    wait_for(lambda: webhook.events() == [1])
    flags = hospital.get("/Flag", params={"patient": people["hospital"]["id"], "status": "active"}).json()
    assert flags["total"] == 1

    send(gateway, adt("A07", "O", control="A07CTL0002", visit="V20260714007"))  # inpatient -> outpatient
    settle()
    assert webhook.events() == [1]
    assert hospital.get("/Flag", params={"patient": people["hospital"]["id"], "status": "active"}).json()["total"] == 1

    send(gateway, adt("A11", "I", control="A07CTL0003", visit="V20260714007"))  # the admission is cancelled
    wait_for(lambda: webhook.events() == [1, 2])  # the retraction is news for the case manager too
    [alert] = alerts(case_app, people["master"])
    assert alert["status"] == "entered-in-error"
    assert hospital.get("/Flag", params={"patient": people["hospital"]["id"], "status": "active"}).json()["total"] == 0
