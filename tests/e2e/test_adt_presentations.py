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

from gateway.intake.mllp import send_mllp
from gateway.paths import FIXTURES_DIR
from tests.e2e.wiring import Gateway, Webhook, client_for, enrol_alice, wait_for

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
    """Alice on the virtual ward with the case manager's Subscription active; returns the
    case-management client and her records (the hospital Patient and the master)."""
    enrolled = enrol_alice(gw, hook)
    return enrolled.case_app, {"hospital": enrolled.hospital_patient, "master": enrolled.master}


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
