"""End to end, on the fully wired gateway (tokens, consent, intake, events, alerts, subscriptions):

an A&E registration (ADT A04 over MLLP) for a person on a virtual ward, known to the hospital by
their hospital number, reaches the case manager's webhook and websocket; the presenting hospital
sees the Flag; a repeated message alerts nobody twice.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import websockets

from gateway.codes import EPISODE_TYPE_SYSTEM, NHS_NUMBER_SYSTEM, VIRTUAL_WARD
from gateway.consent.agreements import build_agreement
from gateway.intake.mllp import send_mllp
from gateway.paths import FIXTURES_DIR
from tests.e2e.wiring import Gateway, Webhook, client_for, enrol_alice, wait_for


def test_a04_over_mllp_alerts_the_case_manager_and_the_hospital_once(gateway: Gateway, webhook: Webhook) -> None:
    gw = gateway
    assert httpx.get(f"{gw.fhir}/Patient").status_code == 401  # every FHIR endpoint needs a token
    assert httpx.get(f"{gw.fhir}/metadata").status_code == 200
    assert httpx.get(f"{gw.fhir}/.well-known/smart-configuration").json()["token_endpoint"] == f"{gw.base}/auth/token"

    enrolled = enrol_alice(gw, webhook)
    case_app, hosp, master, sub = enrolled.case_app, enrolled.hospital_patient, enrolled.master, enrolled.subscription

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
