"""Rest-hook delivery to a real HTTP receiver on 127.0.0.1: handshake, events, retries, error, catch-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.alerts.subscriptions import (
    Deliverer,
    EventFocus,
    RestHookChannel,
    RetryPolicy,
    SubscriptionSpec,
    SubscriptionStateRepository,
    Topic,
    events_bundle,
    parse_subscription,
)
from gateway.alerts.subscriptions.backport import EXT_HEARTBEAT_PERIOD, EXT_MAX_COUNT, EXT_PAYLOAD_CONTENT
from gateway.codes import TOPIC_PRESENTED

from .conftest import Receiver

BASE = "http://gw.test/fhir"
ALERT = {"resourceType": "Communication", "id": "c1", "status": "completed"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 9, 0, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["lean", "httpx"])
async def hook_channel(request: pytest.FixtureRequest) -> AsyncIterator[RestHookChannel]:
    """Every test once over the channel's own HTTP/1.1 client and once over an injected httpx client."""
    channel = RestHookChannel() if request.param == "lean" else RestHookChannel(httpx.AsyncClient())
    yield channel
    await channel.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def delays() -> list[float]:
    return []


@pytest.fixture
def deliverer(
    repo: SubscriptionStateRepository, hook_channel: RestHookChannel, clock: Clock, delays: list[float]
) -> Deliverer:
    async def sleep(seconds: float) -> None:  # real (tiny) waits, recorded
        delays.append(seconds)
        await asyncio.sleep(seconds)

    policy = RetryPolicy(max_attempts=4, base_delay=0.01, multiplier=2.0, jitter=0.0)
    return Deliverer(repo, {"rest-hook": hook_channel}, fhir_base=BASE, policy=policy, clock=clock, sleep=sleep)


def spec_for(
    topics: dict[str, Topic],
    endpoint: str,
    *,
    content: str = "full-resource",
    heartbeat: int | None = None,
    max_count: int | None = None,
) -> SubscriptionSpec:
    extensions: list[dict[str, Any]] = []
    if heartbeat is not None:
        extensions.append({"url": EXT_HEARTBEAT_PERIOD, "valueUnsignedInt": heartbeat})
    if max_count is not None:
        extensions.append({"url": EXT_MAX_COUNT, "valuePositiveInt": max_count})
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": content}]},
        "header": ["Authorization: Bearer hook-secret", "X-Receiver: ward-a"],
        "extension": extensions,
    }
    resource = {
        "resourceType": "Subscription",
        "id": endpoint.rsplit("/", 1)[-1],
        "status": "requested",
        "criteria": TOPIC_PRESENTED,
        "channel": channel,
    }
    return parse_subscription(resource, topics)


def kind(body: dict[str, Any]) -> str:
    params = {p["name"]: p for p in body["entry"][0]["resource"]["parameter"]}
    return str(params["type"]["valueCode"])


def numbers(body: dict[str, Any]) -> list[int]:
    params = body["entry"][0]["resource"]["parameter"]
    return [
        int(part["valueString"])
        for p in params
        if p["name"] == "notification-event"
        for part in p["part"]
        if part["name"] == "event-number"
    ]


async def test_handshake_then_event_with_headers(
    topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer, repo: SubscriptionStateRepository
) -> None:
    spec = spec_for(topics, receiver.add("ok"))
    state = await deliverer.activate(spec)
    assert state.status == "active"
    number = await deliverer.publish(spec, EventFocus("Communication", "c1", 1, "create", ("Encounter/e1",), ALERT))
    assert number == 1
    hook = receiver.hooks["ok"]
    assert [kind(body) for _, body in hook.received] == ["handshake", "event-notification"]
    headers, body = hook.received[1]
    assert headers["authorization"] == "Bearer hook-secret" and headers["x-receiver"] == "ward-a"
    assert headers["content-type"] == "application/fhir+json"
    assert numbers(body) == [1] and body["entry"][1]["resource"] == ALERT
    after = repo.get(spec.id)
    assert after is not None and after.last_delivered_event == 1 and repo.undelivered(spec.id) == []


async def test_flaky_receiver_gets_it_after_retries(
    topics: dict[str, Topic],
    receiver: Receiver,
    deliverer: Deliverer,
    repo: SubscriptionStateRepository,
    delays: list[float],
) -> None:
    spec = spec_for(topics, receiver.add("flaky"))
    await deliverer.activate(spec)
    receiver.hooks["flaky"].fail_first = 2 + receiver.hooks["flaky"].failures
    assert await deliverer.publish(spec, EventFocus("Communication", "c1")) == 1
    assert [kind(b) for _, b in receiver.hooks["flaky"].received] == ["handshake", "event-notification"]
    assert delays == [0.01, 0.02]  # exponential backoff between the three attempts
    state = repo.get(spec.id)
    assert state is not None and state.status == "active" and state.error_count == 0
    [event] = repo.events(spec.id)
    assert event.delivered_at is not None and event.attempts == 3


async def test_dead_receiver_sets_error_but_events_keep_counting(
    topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer, repo: SubscriptionStateRepository, clock: Clock
) -> None:
    spec = spec_for(topics, receiver.add("dies"), content="id-only")
    await deliverer.activate(spec)
    hook = receiver.hooks["dies"]
    hook.always_fail = True
    for n in range(1, 4):
        assert await deliverer.publish(spec, EventFocus("Communication", f"c{n}", 1, "create")) == n
    state = repo.get(spec.id)
    assert state is not None and state.status == "error" and state.events_since_start == 3
    assert state.last_error == "endpoint answered HTTP 503"
    assert hook.failures == 4  # the first event's attempts; later events wait in the log, unpushed
    # nothing dropped: $events replays every number, undelivered
    catch_up = events_bundle(state, repo.events(spec.id, 1, 3), fhir_base=BASE, content="id-only", now=clock.now)
    assert numbers(catch_up) == [1, 2, 3] and len(catch_up["entry"]) == 4
    assert [e.number for e in repo.undelivered(spec.id)] == [1, 2, 3]
    # a probe while still down changes nothing; once up, the backlog goes out and the status recovers
    assert await deliverer.flush_pending({spec.id: spec}) == {spec.id: 0}
    hook.always_fail = False
    assert await deliverer.flush_pending({spec.id: spec}) == {spec.id: 3}
    assert [numbers(b) for _, b in hook.received[1:]] == [[1], [2], [3]]
    state = repo.get(spec.id)
    assert state is not None and state.status == "active" and repo.undelivered(spec.id) == []


async def test_failed_handshake_is_error(topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer) -> None:
    spec = spec_for(topics, receiver.add("never", always_fail=True))
    state = await deliverer.activate(spec)
    assert state.status == "error" and state.error_count == 4


async def test_events_before_handshake_are_held_then_sent_in_batches(
    topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer, repo: SubscriptionStateRepository
) -> None:
    spec = spec_for(topics, receiver.add("late"), max_count=2)
    await deliverer.register(spec)
    for n in range(1, 4):
        assert await deliverer.publish(spec, EventFocus("Communication", f"c{n}")) == n
    assert receiver.hooks["late"].received == []  # requested: nothing before the handshake
    await deliverer.activate(spec)
    received = [b for _, b in receiver.hooks["late"].received]
    assert [kind(b) for b in received] == ["handshake", "event-notification", "event-notification"]
    assert [numbers(b) for b in received[1:]] == [[1, 2], [3]]


async def test_off_subscription_numbers_nothing(
    topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer, repo: SubscriptionStateRepository
) -> None:
    spec = spec_for(topics, receiver.add("off"))
    await deliverer.activate(spec)
    repo.set_status(spec.id, "off", now=datetime(2025, 3, 1))
    assert await deliverer.publish(spec, EventFocus("Communication", "c1")) is None
    assert repo.events(spec.id) == []


async def test_heartbeats_on_schedule(
    topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer, clock: Clock
) -> None:
    spec = spec_for(topics, receiver.add("beat"), heartbeat=60)
    await deliverer.activate(spec)
    specs = {spec.id: spec}
    clock.now += timedelta(seconds=59)
    assert await deliverer.send_due_heartbeats(specs) == []
    clock.now += timedelta(seconds=1)
    assert await deliverer.send_due_heartbeats(specs) == [spec.id]
    assert await deliverer.send_due_heartbeats(specs) == []  # rescheduled a period on
    assert [kind(b) for _, b in receiver.hooks["beat"].received] == ["handshake", "heartbeat"]


async def test_flush_sends_the_remembered_payload_without_reading_the_store(
    topics: dict[str, Topic], receiver: Receiver, repo: SubscriptionStateRepository, hook_channel: RestHookChannel
) -> None:
    """What the publisher saw (the version the event names) is what goes out; `resolve` is only
    the fall-back for events whose payload this process does not hold (e.g. after a restart)."""
    resolved: list[str] = []

    async def resolve(event: Any) -> dict[str, Any]:
        resolved.append(event.focus_reference)
        return {"resourceType": "Communication", "id": event.focus_id, "status": "from-the-store"}

    deliverer = Deliverer(repo, {"rest-hook": hook_channel}, fhir_base=BASE, resolve=resolve)
    spec = spec_for(topics, receiver.add("remembered"))
    await deliverer.activate(spec)
    remembered = EventFocus("Communication", "c1", 1, "create", resource=ALERT)
    [(first, _)] = repo.record_events([(spec.id, spec.topic, remembered, None)], now=datetime(2025, 3, 1))
    deliverer.remember(spec, first, remembered)
    [(second, _)] = repo.record_events(
        [(spec.id, spec.topic, EventFocus("Communication", "c2", 1, "create"), None)], now=datetime(2025, 3, 1)
    )

    assert await deliverer.flush(spec) == 2
    bodies = [body for _, body in receiver.hooks["remembered"].received if kind(body) == "event-notification"]
    assert [numbers(b) for b in bodies] == [[first], [second]]
    assert bodies[0]["entry"][1]["resource"] == ALERT
    assert bodies[1]["entry"][1]["resource"]["status"] == "from-the-store"
    assert resolved == ["Communication/c2"]


async def test_flush_marks_deliveries_in_the_background_and_never_sends_one_twice_meanwhile(
    topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer, repo: SubscriptionStateRepository
) -> None:
    """A flush does not wait for each delivery's mark: marks are queued and written together. Until
    written, the delivered events are held back from further flushes, so nothing goes out twice."""
    spec = spec_for(topics, receiver.add("quick"), content="id-only")
    await deliverer.activate(spec)
    for n in range(1, 4):
        repo.record_events(
            [(spec.id, spec.topic, EventFocus("Communication", f"c{n}", 1), None)], now=datetime(2025, 3, 1)
        )

    assert await deliverer.flush(spec) == 3
    assert await deliverer.flush(spec) == 0  # marks perhaps not written yet: still nothing re-sent
    await deliverer.settle()
    assert repo.undelivered(spec.id) == []
    state = repo.get(spec.id)
    assert state is not None and state.last_delivered_event == 3 and state.error_count == 0
    sent = [numbers(b) for _, b in receiver.hooks["quick"].received if kind(b) == "event-notification"]
    assert sent == [[1], [2], [3]]


async def test_the_timer_leaves_fresh_events_to_the_flush_that_numbered_them(
    topics: dict[str, Topic], receiver: Receiver, deliverer: Deliverer, repo: SubscriptionStateRepository, clock: Clock
) -> None:
    """Another process may be delivering a fresh event (its mark not yet written): the recovery
    timer only takes events left undelivered for `older_than`, so it does not send duplicates."""
    spec = spec_for(topics, receiver.add("fresh"), content="id-only")
    await deliverer.activate(spec)
    repo.record_events([(spec.id, spec.topic, EventFocus("Communication", "c1", 1), None)], now=clock.now)

    assert await deliverer.flush_pending({spec.id: spec}, older_than=timedelta(seconds=2)) == {}
    clock.now += timedelta(seconds=3)
    assert await deliverer.flush_pending({spec.id: spec}, older_than=timedelta(seconds=2)) == {spec.id: 1}
