"""Delivering topic events to subscribers: handshake, numbered events with retries, heartbeats.

The rules that make alerts impossible to lose silently:

- an event is numbered and logged before any delivery is tried, so a crash or a dead receiver
  leaves it in the log (`delivered_at` NULL) for `flush` and for the client's `$events`;
- a failed notification is retried with exponential backoff; after `RetryPolicy.error_threshold`
  consecutive failures the subscription goes to `error`, and from then on events are still
  numbered and logged, but not pushed, until `flush` gets one through (then `active` again);
- nothing is sent before the handshake has succeeded (`requested`), and nothing is numbered for a
  subscription the client turned `off`.

Deliveries for one subscription are serialised in this process so receivers see numbers in order.
The repository is synchronous and runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog

from gateway.alerts.subscriptions.channels import Channel, ChannelUnavailable, DeliveryError
from gateway.alerts.subscriptions.notifications import notification_bundle
from gateway.alerts.subscriptions.records import EventFocus, EventRecord, SubscriptionState
from gateway.alerts.subscriptions.repository import SubscriptionStateRepository
from gateway.alerts.subscriptions.retry import RetryPolicy, backoff_delay
from gateway.alerts.subscriptions.spec import SubscriptionSpec
from gateway.events.threads import in_thread, in_thread_unhurried
from gateway.types import JSON

log = structlog.get_logger(__name__)

T = TypeVar("T")
PAYLOADS_KEPT = 1_000
"""Payloads kept in memory per subscription for delivery (beyond that they are read from the store)."""
LEASE = timedelta(seconds=15)
"""How long a delivery lease lasts unless renewed (each read of a flush renews it): after a process
dies, another takes its subscriptions over after this long."""
ResourceResolver = Callable[[EventRecord], Awaitable[JSON | None]]
"""Loads an event's focus (as the subscriber may see it) for full-resource catch-up; None if gone."""


def utcnow() -> datetime:
    """Naive UTC, the store's convention."""
    return datetime.now(UTC).replace(tzinfo=None)


class Deliverer:
    """Sends notifications for subscriptions over their channel (`channels` keyed by channel type)."""

    def __init__(
        self,
        repo: SubscriptionStateRepository,
        channels: Mapping[str, Channel],
        *,
        fhir_base: str,
        policy: RetryPolicy | None = None,
        resolve: ResourceResolver | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        lease_owner: str | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        self._repo = repo
        # Several processes on one database: this process's name on the subscriptions it delivers
        # (`SubscriptionStateRepository.claim`). None: the only process (SQLite), no lease needed.
        self._owner = lease_owner
        self._lease = lease
        self._releases: list[tuple[str, asyncio.Future[bool | None]]] = []
        self._channels = channels
        self._base = fhir_base
        self._policy = policy or RetryPolicy()
        self._resolve = resolve
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._locks: dict[str, asyncio.Lock] = {}
        self._payloads: dict[str, dict[int, EventFocus]] = {}  # sub id -> number -> focus, until delivered
        self._unmarked: dict[str, set[int]] = {}  # sub id -> delivered, mark not yet written
        self._marks: list[tuple[str, list[int]]] = []
        self._marker: asyncio.Task[None] | None = None

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await in_thread(fn, *args, **kwargs)

    def _lock(self, sub_id: str) -> asyncio.Lock:
        return self._locks.setdefault(sub_id, asyncio.Lock())

    def remember(self, spec: SubscriptionSpec, number: int, focus: EventFocus) -> None:
        """Keep the focus as the publisher saw it (the version the event names) for the flush that
        delivers event `number`, so delivery needs no store read.

        Bounded per subscription; an event whose payload was dropped (or that a restart forgot) is
        loaded through `resolve` as before.
        """
        if spec.content != "full-resource" or focus.resource is None:
            return
        kept = self._payloads.setdefault(spec.id, {})
        kept[number] = focus
        while len(kept) > PAYLOADS_KEPT:
            del kept[next(iter(kept))]

    async def register(self, spec: SubscriptionSpec) -> SubscriptionState:
        """Create or refresh the status row for a created/updated Subscription (no handshake)."""
        return await self._db(
            self._repo.register,
            spec.id,
            spec.topic,
            now=self._clock(),
            status=spec.status,
            heartbeat_period=spec.heartbeat_period,
        )

    async def activate(self, spec: SubscriptionSpec) -> SubscriptionState:
        """Register and handshake: `requested` -> `active` (then send any backlog) or -> `error`.

        A websocket subscription is active at once: its handshake is sent when a socket binds.
        """
        state = await self.register(spec)
        if state.status in ("active", "off"):
            return state
        if spec.channel_type == "websocket":
            return await self._db(self._repo.set_status, spec.id, "active", now=self._clock())
        async with self._lock(spec.id):
            bundle = notification_bundle(
                state, "handshake", fhir_base=self._base, content=spec.content, now=self._clock()
            )
            ok = await self._send(spec, bundle, (), attempts=self._policy.max_attempts, escalate=False)
            status = "active" if ok else "error"
            state = await self._db(self._repo.set_status, spec.id, status, now=self._clock())
            log.info("subscription.handshake", subscription=spec.id, ok=ok, status=status)
        if ok:
            await self.flush(spec)
        return state

    async def publish(self, spec: SubscriptionSpec, focus: EventFocus) -> int | None:
        """Number and log one topic event for `spec`, then deliver it if the subscription is active.

        Returns the event number, or None for a subscription that is `off`. The caller has already
        decided that the event passes the subscription's filters and what the subscriber may see.
        """
        if spec.status == "off":
            return None
        state = await self._db(self._repo.get, spec.id)
        if state is None:
            state = await self.register(spec)
        if state.status == "off":
            return None
        now = self._clock()
        number = await self._db(self._repo.record_event, spec.id, focus, topic=spec.topic, now=now)
        if state.status != "active":
            log.info("subscription.event_held", subscription=spec.id, event_number=number, status=state.status)
            return number
        event = EventRecord(
            sub_id=spec.id,
            number=number,
            topic=spec.topic,
            focus_type=focus.res_type,
            focus_id=focus.res_id,
            focus_version=focus.version,
            interaction=focus.interaction,
            context=focus.context,
            created_at=now,
        )
        resources = {focus.reference: focus.resource} if focus.resource is not None else {}
        async with self._lock(spec.id):
            bundle = notification_bundle(
                replace(state, events_since_start=number),
                "event-notification",
                fhir_base=self._base,
                content=spec.content,
                now=self._clock(),
                events=[event],
                resources=resources,
                included=focus.included,
            )
            await self._send(spec, bundle, [number], attempts=self._policy.max_attempts)
        return number

    async def flush(self, spec: SubscriptionSpec) -> int:
        """Deliver logged, undelivered events (oldest first, `max_count` per notification).

        For a subscription in `error` the first notification is a single probe; if it gets through
        the subscription is `active` again and the rest follows. Returns how many events went out.

        Each read takes one event more than a notification holds, so the flush knows whether to look
        again without another read; an event numbered meanwhile kicks a flush of its own
        (`SubscriptionService._kick`), and the timer recovers anything else.

        With several processes (`lease_owner` set) a flush first takes the subscription's delivery
        lease; when another process holds it, that process delivers everything committed before it
        lets go (it keeps the lease while anything is waiting), so this one returns at once. The
        lease is given back with the last delivery's mark.
        """
        delivered = 0
        limit = spec.max_count or 1
        # a websocket is bound to one process: only that one can deliver it, so it takes no lease
        owner = self._owner if spec.channel_type == "rest-hook" else None
        async with self._lock(spec.id):
            while True:
                state, events, held = await self._read(spec.id, limit, owner)
                if not held or state is None or state.status in ("requested", "off"):
                    return delivered
                probe = state.status == "error"
                complete = True
                more = len(events) > limit  # read one beyond the notification: whether to look again
                events = events[:limit]
                while events:
                    resources = await self._resources(spec, events)
                    numbers = [e.number for e in events]
                    bundle = notification_bundle(
                        replace(state, events_since_start=max(state.events_since_start, *numbers)),
                        "event-notification",
                        fhir_base=self._base,
                        content=spec.content,
                        now=self._clock(),
                        events=events,
                        resources=resources,
                    )
                    attempts = 1 if probe else self._policy.max_attempts
                    if not await self._send(spec, bundle, numbers, attempts=attempts, mark_later=True):
                        complete = False  # the lease is kept: this process's timer tries again
                        break
                    kept = self._payloads.get(spec.id, {})
                    for number in numbers:
                        kept.pop(number, None)
                    if probe:  # it got through: the mark brings the subscription back to `active`
                        state = replace(state, status="active", error_count=0, last_error=None)
                    probe = False
                    delivered += len(events)
                    if not more:
                        break
                    state, events, held = await self._read(spec.id, limit, owner)
                    if not held or state is None:
                        return delivered
                    more = len(events) > limit
                    events = events[:limit]
                if owner is None or not complete or await self._give_back(spec.id) is not False:
                    return delivered
                # not given back: another process numbered events meanwhile, and they are ours to send

    async def _read(
        self, sub_id: str, limit: int, owner: str | None
    ) -> tuple[SubscriptionState | None, list[EventRecord], bool]:
        """The state and the next events to send (less those delivered here whose mark is not yet
        written), and whether this process may send them (it holds the lease, or needs none)."""
        exclude = sorted(self._unmarked.get(sub_id, ()))
        limit += 1  # one more than a notification takes: whether there are more
        if owner is None:
            state, events = await self._db(self._repo.pending, sub_id, limit=limit, exclude=exclude)
            return state, events, True
        now = self._clock()
        return await self._db(
            self._repo.claim, sub_id, owner, now=now, until=now + self._lease, limit=limit, exclude=exclude
        )

    async def _give_back(self, sub_id: str) -> bool | None:
        """Give the lease back with the next mark transaction (after this subscription's marks);
        False when events are waiting, so the lease was kept; None when that transaction failed (the
        lease is kept and this process's timer tries again, rather than sending again at once)."""
        done: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._releases.append((sub_id, done))
        self._start_marker()
        return await done

    def _start_marker(self) -> None:
        if self._marker is None or self._marker.done():
            self._marker = asyncio.ensure_future(self._write_marks())

    def _mark_later(self, sub_id: str, numbers: Sequence[int]) -> None:
        """Queue a delivery's mark; one background task writes all queued marks in one transaction.

        Until its mark is written a delivered event is held back from `flush` in this process, so
        the next notification need not wait for the database. A mark that fails (or a crash before
        it is written) leaves the event undelivered in the log: it goes out again, with the same
        number, so receivers see a duplicate they can detect, never a gap.
        """
        self._unmarked.setdefault(sub_id, set()).update(numbers)
        self._marks.append((sub_id, list(numbers)))
        self._start_marker()

    async def _write_marks(self) -> None:
        while self._marks or self._releases:
            batch, self._marks = self._marks, []
            releases, self._releases = self._releases, []
            released: set[str] | None = None
            try:
                # bookkeeping off the latency path: on SQLite it waits for the lock in SQLite's own
                # backoff rather than polling for it (as the relay's marks do)
                released = await in_thread_unhurried(
                    self._repo.mark_delivered_many,
                    batch,
                    now=self._clock(),
                    release=[sub_id for sub_id, _ in releases],
                    owner=self._owner,
                )
            except Exception:
                log.exception("subscription.mark_failed", deliveries=len(batch))
            for sub_id, done in releases:
                if not done.done():
                    done.set_result(None if released is None else sub_id in released)
            for sub_id, numbers in batch:
                held = self._unmarked.get(sub_id)
                if held is not None:
                    held.difference_update(numbers)
                    if not held:
                        del self._unmarked[sub_id]

    async def release_leases(self) -> None:
        """Give back every delivery lease this process holds (shutdown; after `settle`)."""
        if self._owner is not None:
            try:
                await self._db(self._repo.release_leases, self._owner)
            except Exception:  # they run out on their own
                log.exception("subscription.lease_release_failed")

    async def settle(self) -> None:
        """Wait until every queued delivery mark (and lease release) is written (shutdown, tests)."""
        while self._marker is not None and not self._marker.done():
            await asyncio.shield(self._marker)

    async def flush_pending(
        self, specs: Mapping[str, SubscriptionSpec], *, older_than: timedelta | None = None
    ) -> dict[str, int]:
        """`flush` every subscription in `specs` that has undelivered events; run it on a schedule.

        This is the recovery path for subscriptions in `error` (one probe per call) and for events
        held while a handshake was in flight. Returns delivered counts by subscription id.
        """
        before = self._clock() - older_than if older_than is not None else None
        pending = await self._db(self._repo.pending_subscriptions, created_before=before)
        delivered = {sub_id: await self.flush(specs[sub_id]) for sub_id in pending if sub_id in specs}
        await self.settle()  # the timer's round ends with its deliveries recorded
        return delivered

    async def heartbeat(self, spec: SubscriptionSpec) -> bool:
        """Send one heartbeat (no retries: the next one is a period away). True when delivered."""
        async with self._lock(spec.id):
            state = await self._db(self._repo.get, spec.id)
            if state is None or state.status != "active":
                return False
            bundle = notification_bundle(
                state, "heartbeat", fhir_base=self._base, content=spec.content, now=self._clock()
            )
            ok = await self._send(spec, bundle, (), attempts=1)
            if not ok:
                await self._db(self._repo.schedule_heartbeat, spec.id, now=self._clock())
            return ok

    async def send_due_heartbeats(self, specs: Mapping[str, SubscriptionSpec]) -> list[str]:
        """Heartbeat every active subscription that is due now; returns the ids that got one."""
        due = await self._db(self._repo.due_heartbeats, self._clock())
        sent: list[str] = []
        for sub_id in due:
            spec = specs.get(sub_id)
            if spec is not None and await self.heartbeat(spec):
                sent.append(sub_id)
        return sent

    async def _resources(self, spec: SubscriptionSpec, events: Sequence[EventRecord]) -> dict[str, JSON]:
        if spec.content != "full-resource":
            return {}
        found: dict[str, JSON] = {}
        kept = self._payloads.get(spec.id, {})
        for event in events:
            focus = kept.get(event.number)
            resource = focus.resource if focus is not None else None
            if resource is None and self._resolve is not None:
                resource = await self._resolve(event)
            if resource is not None:
                found[event.focus_reference] = resource
        return found

    async def _send(
        self,
        spec: SubscriptionSpec,
        bundle: JSON,
        numbers: Sequence[int],
        *,
        attempts: int,
        escalate: bool = True,
        mark_later: bool = False,
    ) -> bool:
        """Try up to `attempts` times with backoff; record the outcome. True when delivered.

        With `escalate`, reaching the error threshold sets the subscription to `error` and stops.
        With `mark_later`, a delivery's mark is queued (`_mark_later`) rather than awaited.
        """
        channel = self._channels.get(spec.channel_type)
        if channel is None:
            raise DeliveryError(f"no channel configured for {spec.channel_type}")
        for attempt in range(1, attempts + 1):
            try:
                await channel.send(spec, bundle)
            except ChannelUnavailable as exc:
                log.info("subscription.no_receiver", subscription=spec.id, events=list(numbers), reason=str(exc))
                return False
            except DeliveryError as exc:
                state = await self._db(self._repo.mark_failed, spec.id, numbers, str(exc), now=self._clock())
                log.warning(
                    "subscription.delivery_failed",
                    subscription=spec.id,
                    events=list(numbers),
                    attempt=attempt,
                    errors=state.error_count,
                    reason=str(exc),
                )
                if escalate and state.error_count >= self._policy.error_threshold:
                    if state.status != "error":
                        await self._db(self._repo.set_status, spec.id, "error", now=self._clock())
                        log.warning("subscription.error", subscription=spec.id, errors=state.error_count)
                    return False
                if attempt < attempts:
                    await self._sleep(backoff_delay(attempt, self._policy, self._rand()))
                continue
            if mark_later and numbers:
                self._mark_later(spec.id, numbers)
            else:
                await self._db(self._repo.mark_delivered, spec.id, numbers, now=self._clock())
            return True
        return False
