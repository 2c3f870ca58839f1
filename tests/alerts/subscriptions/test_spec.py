"""`parse_subscription`: the backport Subscription profile in, a checked spec (or a clear error) out."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.alerts.subscriptions import SubscriptionSpec, Topic, matches, parse_subscription
from gateway.alerts.subscriptions.backport import (
    EXT_CHANNEL_TYPE,
    EXT_FILTER_CRITERIA,
    EXT_HEARTBEAT_PERIOD,
    EXT_MAX_COUNT,
    EXT_PAYLOAD_CONTENT,
    EXT_TIMEOUT,
)
from gateway.codes import TOPIC_EPISODE_CHANGED, TOPIC_PRESENTED
from gateway.consent.agreements import SOURCE_ORGANIZATION_TAG_SYSTEM
from gateway.fhir.errors import FhirError


def subscription(*filters: str, content: str | None = "id-only", **channel: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": "sub-1",
        "status": "requested",
        "reason": "presentation alerts for ward A",
        "criteria": TOPIC_PRESENTED,
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://receiver.example.org/hook",
            "payload": "application/fhir+json",
            "header": ["Authorization: Bearer abc"],
            **channel,
        },
    }
    if filters:
        resource["_criteria"] = {"extension": [{"url": EXT_FILTER_CRITERIA, "valueString": f} for f in filters]}
    if content is not None:
        resource["channel"]["_payload"] = {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": content}]}
    return resource


def error_of(resource: dict[str, Any], topics: dict[str, Topic], **kwargs: Any) -> FhirError:
    with pytest.raises(FhirError) as caught:
        parse_subscription(resource, topics, **kwargs)
    return caught.value


def test_full_subscription_is_parsed(topics: dict[str, Topic]) -> None:
    resource = subscription("Communication?patient=Patient/p1,Patient/p2&ward=Location/w1", content="full-resource")
    resource["channel"]["extension"] = [
        {"url": EXT_HEARTBEAT_PERIOD, "valueUnsignedInt": 60},
        {"url": EXT_TIMEOUT, "valueUnsignedInt": 5},
        {"url": EXT_MAX_COUNT, "valuePositiveInt": 20},
    ]
    spec = parse_subscription(resource, topics)
    assert spec.topic == TOPIC_PRESENTED and spec.status == "requested"
    assert spec.channel_type == "rest-hook" and spec.content == "full-resource"
    assert spec.headers == (("Authorization", "Bearer abc"),)
    assert (spec.heartbeat_period, spec.timeout, spec.max_count) == (60, 5, 20)
    assert [(f.param, f.values) for f in spec.filters] == [
        ("patient", ("Patient/p1", "Patient/p2")),
        ("ward", ("Location/w1",)),
    ]


def test_server_owns_active_and_error(topics: dict[str, Topic]) -> None:
    resource = subscription()
    resource["status"] = "active"
    assert parse_subscription(resource, topics).status == "requested"
    resource["status"] = "off"
    assert parse_subscription(resource, topics).status == "off"


def test_payload_defaults(topics: dict[str, Topic]) -> None:
    assert parse_subscription(subscription(content=None), topics).content == "id-only"
    no_payload = subscription(content=None)
    del no_payload["channel"]["payload"]
    assert parse_subscription(no_payload, topics).content == "empty"


def test_bare_filter_param_implies_the_only_resource(topics: dict[str, Topic]) -> None:
    spec = parse_subscription(subscription("care-manager=Practitioner/cm1"), topics)
    assert spec.filters[0].resource_type == "Communication"


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"criteria": "Encounter?class=EMER"}, 400, "query-based criteria"),
        ({"criteria": "https://example.org/SubscriptionTopic/unknown"}, 400, "unknown SubscriptionTopic"),
        ({"status": "paused"}, 400, "Subscription.status"),
        ({"id": None}, 400, "Subscription.id"),
        ({"resourceType": "Patient"}, 400, "not a Subscription"),
    ],
)
def test_bad_resource_level_input(topics: dict[str, Topic], change: dict[str, Any], status: int, text: str) -> None:
    resource = subscription() | change
    err = error_of(resource, topics)
    assert err.status == status and text in err.diagnostics


@pytest.mark.parametrize(
    ("flt", "text"),
    [
        ("Encounter?patient=Patient/1", "cannot filter by Encounter.patient"),
        ("Communication?status=completed", "cannot filter by Communication.status"),
        ("Communication?patient:missing=true", "modifier :missing"),
        ("Communication?patient=", "has no value"),
        ("Communication?", "no param=value"),
        ("lower?patient=x", "not a resource type"),
    ],
)
def test_bad_filters(topics: dict[str, Topic], flt: str, text: str) -> None:
    err = error_of(subscription(flt), topics)
    assert err.code == "invalid" and text in err.diagnostics
    assert err.issues[0]["expression"] == ["Subscription.criteria.extension"]


def test_filters_are_checked_against_the_subscribed_topic(topics: dict[str, Topic]) -> None:
    resource = subscription("EpisodeOfCare?care-manager=Practitioner/cm1")
    assert "cannot filter" in error_of(resource, topics).diagnostics
    resource["criteria"] = TOPIC_EPISODE_CHANGED
    assert parse_subscription(resource, topics).filters[0].resource_type == "EpisodeOfCare"


@pytest.mark.parametrize("kind", ["email", "message", "sms"])
def test_unsupported_channel_types(topics: dict[str, Topic], kind: str) -> None:
    err = error_of(subscription(type=kind), topics)
    assert err.code == "not-supported" and kind in err.diagnostics


def test_custom_channel_type_extension_is_not_supported(topics: dict[str, Topic]) -> None:
    resource = subscription()
    resource["channel"]["_type"] = {"extension": [{"url": EXT_CHANNEL_TYPE, "valueCoding": {"code": "zulip"}}]}
    assert error_of(resource, topics).code == "not-supported"


@pytest.mark.parametrize(
    ("endpoint", "text"),
    [
        ("ftp://receiver.example.org/x", "http or https"),
        ("/relative/hook", "http or https"),
        ("https://user:pw@receiver.example.org/hook", "credentials"),
        (None, "needs channel.endpoint"),
    ],
)
def test_bad_endpoints(topics: dict[str, Topic], endpoint: str | None, text: str) -> None:
    assert text in error_of(subscription(endpoint=endpoint), topics).diagnostics


def test_require_https_still_allows_loopback(topics: dict[str, Topic]) -> None:
    plain = subscription(endpoint="http://receiver.example.org/hook")
    assert "https" in error_of(plain, topics, require_https=True).diagnostics
    loop = subscription(endpoint="http://127.0.0.1:8099/hook")
    assert parse_subscription(loop, topics, require_https=True).endpoint == "http://127.0.0.1:8099/hook"


def test_websocket_needs_no_endpoint(topics: dict[str, Topic]) -> None:
    spec = parse_subscription(subscription(type="websocket", endpoint=None), topics)
    assert spec.channel_type == "websocket" and spec.endpoint is None


@pytest.mark.parametrize(
    ("header", "text"),
    [("NoColon", "Name: value"), ("Content-Type: text/plain", "may not set"), ("X-A: b\r\nX-B: c", "Name: value")],
)
def test_bad_headers(topics: dict[str, Topic], header: str, text: str) -> None:
    assert text in error_of(subscription(header=[header]), topics).diagnostics


def test_bad_content_and_payload(topics: dict[str, Topic]) -> None:
    assert "payload content" in error_of(subscription(content="everything"), topics).diagnostics
    assert error_of(subscription(payload="application/fhir+xml"), topics).code == "not-supported"


def test_bad_heartbeat(topics: dict[str, Topic]) -> None:
    resource = subscription()
    resource["channel"]["extension"] = [{"url": EXT_HEARTBEAT_PERIOD, "valueUnsignedInt": 0}]
    assert "heartbeat" in error_of(resource, topics).diagnostics


def test_matches_ands_filters_and_ors_values(topics: dict[str, Topic]) -> None:
    spec: SubscriptionSpec = parse_subscription(
        subscription("Communication?patient=Patient/p1,Patient/p2", "Communication?organization=Organization/o1"),
        topics,
    )
    assert matches(
        spec, {"patient": ["https://gw/fhir/Patient/p2"], "organization": ["Organization/o1", "Organization/o9"]}
    )
    assert not matches(spec, {"patient": ["Patient/p3"], "organization": ["Organization/o1"]})
    assert not matches(spec, {"patient": ["Patient/p1"]})
    assert matches(parse_subscription(subscription(), topics), {})


def test_the_source_organisation_is_the_writers_tag(topics: dict[str, Topic]) -> None:
    """Notifications are decided with the view of the organisation whose client wrote the Subscription
    (the source tag the server put on it); one the gateway wrote itself has none."""
    assert parse_subscription(subscription(), topics).source_organization is None
    tagged = subscription()
    tagged["meta"] = {
        "tag": [
            {"system": "http://example.org/other", "code": "x"},
            {"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": "trust-rxx"},
        ]
    }
    assert parse_subscription(tagged, topics).source_organization == "Organization/trust-rxx"
