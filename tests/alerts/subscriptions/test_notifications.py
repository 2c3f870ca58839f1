"""Notification Bundles in the backport-subscription-notification-r4 shape, checked with R4B models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters

from gateway.alerts.subscriptions import (
    EventRecord,
    SubscriptionState,
    events_bundle,
    notification_bundle,
    parse_events_query,
    status_bundle,
)
from gateway.alerts.subscriptions.backport import PROFILE_STATUS_R4
from gateway.codes import TOPIC_PRESENTED
from gateway.fhir.errors import FhirError

BASE = "https://gw.example.org/fhir"
NOW = datetime(2025, 3, 1, 9, 30, 0)
STATE = SubscriptionState(
    sub_id="s1",
    topic=TOPIC_PRESENTED,
    status="active",
    events_since_start=7,
    last_delivered_event=5,
    error_count=0,
    last_error=None,
    heartbeat_period=None,
    next_heartbeat=None,
    updated_at=NOW,
)
EVENTS = [
    EventRecord("s1", n, TOPIC_PRESENTED, "Communication", f"c{n}", 1, "create", ("Encounter/e1",), NOW) for n in (6, 7)
]
ALERT = {"resourceType": "Communication", "id": "c6", "status": "completed"}


def validated(bundle: dict[str, Any]) -> tuple[Bundle, dict[str, Any]]:
    model = Bundle.model_validate(bundle)
    status = bundle["entry"][0]["resource"]
    Parameters.model_validate(status)
    assert status["meta"]["profile"] == [PROFILE_STATUS_R4]
    return model, {p["name"]: p for p in status["parameter"]}


def values(params: list[dict[str, Any]], name: str) -> list[Any]:
    return [p for p in params if p["name"] == name]


@pytest.mark.parametrize("kind", ["handshake", "heartbeat"])
def test_handshake_and_heartbeat_carry_status_only(kind: str) -> None:
    bundle = notification_bundle(STATE, kind, fhir_base=BASE, content="id-only", now=NOW)  # type: ignore[arg-type]
    model, params = validated(bundle)
    assert model.type == "history" and len(bundle["entry"]) == 1
    assert params["type"]["valueCode"] == kind
    assert params["subscription"]["valueReference"]["reference"] == f"{BASE}/Subscription/s1"
    assert params["topic"]["valueCanonical"] == TOPIC_PRESENTED
    assert params["events-since-subscription-start"]["valueString"] == "7"
    assert "notification-event" not in params


def test_id_only_event_notification() -> None:
    bundle = notification_bundle(
        STATE,
        "event-notification",
        fhir_base=BASE,
        content="id-only",
        now=NOW,
        events=EVENTS,
        resources={"Communication/c6": ALERT},
    )
    validated(bundle)
    events = values(bundle["entry"][0]["resource"]["parameter"], "notification-event")
    assert [{p["name"]: p for p in e["part"]}["event-number"]["valueString"] for e in events] == ["6", "7"]
    first = {p["name"]: p for p in events[0]["part"]}
    assert first["timestamp"]["valueInstant"] == "2025-03-01T09:30:00.000Z"
    assert first["focus"]["valueReference"]["reference"] == f"{BASE}/Communication/c6"
    assert first["additional-context"]["valueReference"]["reference"] == f"{BASE}/Encounter/e1"
    payload = bundle["entry"][1:]
    assert [e["fullUrl"] for e in payload] == [f"{BASE}/Communication/c6", f"{BASE}/Communication/c7"]
    assert all("resource" not in e for e in payload)  # id-only never carries content
    assert payload[0]["request"] == {"method": "POST", "url": "Communication"}


def test_full_resource_event_notification() -> None:
    included = [{"resourceType": "Encounter", "id": "e1", "status": "arrived", "class": {"code": "EMER"}}]
    bundle = notification_bundle(
        STATE,
        "event-notification",
        fhir_base=BASE,
        content="full-resource",
        now=NOW,
        events=EVENTS,
        resources={"Communication/c6": ALERT},
        included=included,
    )
    model, _ = validated(bundle)
    assert bundle["entry"][1]["resource"] == ALERT
    assert "resource" not in bundle["entry"][2]  # c7 not supplied: degrades to id-only
    assert bundle["entry"][3]["resource"]["resourceType"] == "Encounter"
    assert model.entry is not None and len(model.entry) == 4


def test_empty_content_names_no_focus() -> None:
    bundle = notification_bundle(
        STATE,
        "event-notification",
        fhir_base=BASE,
        content="empty",
        now=NOW,
        events=EVENTS,
        resources={"Communication/c6": ALERT},
    )
    validated(bundle)
    assert len(bundle["entry"]) == 1
    for event in values(bundle["entry"][0]["resource"]["parameter"], "notification-event"):
        assert {p["name"] for p in event["part"]} == {"event-number", "timestamp"}


def test_bundle_ids_are_deterministic_and_distinct() -> None:
    one = notification_bundle(STATE, "heartbeat", fhir_base=BASE, content="empty", now=NOW)
    assert one == notification_bundle(STATE, "heartbeat", fhir_base=BASE, content="empty", now=NOW)
    two = notification_bundle(STATE, "handshake", fhir_base=BASE, content="empty", now=NOW)
    assert one["id"] != two["id"]


def test_status_operation_bundle() -> None:
    broken = SubscriptionState(**{**STATE.__dict__, "sub_id": "s2", "status": "error", "last_error": "HTTP 503"})
    bundle = status_bundle([STATE, broken], fhir_base=BASE, now=NOW)
    model = Bundle.model_validate(bundle)
    assert model.type == "searchset" and bundle["total"] == 2
    second = {p["name"]: p for p in bundle["entry"][1]["resource"]["parameter"]}
    Parameters.model_validate(bundle["entry"][1]["resource"])
    assert second["type"]["valueCode"] == "query-status"
    assert second["status"]["valueCode"] == "error"
    assert second["error"]["valueCodeableConcept"]["text"] == "HTTP 503"


def test_events_operation_bundle() -> None:
    bundle = events_bundle(STATE, EVENTS, fhir_base=BASE, content="id-only", now=NOW)
    _, params = validated(bundle)
    assert params["type"]["valueCode"] == "query-event"
    assert len(bundle["entry"]) == 3


def test_events_query_parameters() -> None:
    q = parse_events_query("3", "9", None, default="id-only")
    assert (q.since, q.until, q.content) == (3, 9, "id-only")
    assert parse_events_query(None, None, "full-resource", default="empty").content == "full-resource"
    for since, until, content in [("x", None, None), ("0", None, None), ("5", "2", None), (None, None, "all")]:
        with pytest.raises(FhirError):
            parse_events_query(since, until, content, default="id-only")
