"""Subscriptions as stored FHIR resources, kept in step with delivery state, and topic publishing.

A client writes a `Subscription` like any resource (REST, Bundle). Three steps make it live:

1. `check` runs before every Subscription write (`Store.before_write`): a bad one is refused
   with the parser's 400, and the server owns the status, so a client write always stores
   `requested` (or `off`).
2. After commit, `handle` (a bus consumer) registers it and starts the handshake in the
   background, so a slow or dead endpoint never holds up the bus; the outcome (`active` /
   `error`) is written back to the resource. That write-back comes round as an event too: it is
   recognised because the stored status already equals the delivery state, so nothing loops.
3. `publish` numbers and logs a topic event for every matching subscription (the durable step),
   then a per-subscription flush task delivers it; the timer (`flush_pending`, heartbeats, once
   a second) recovers anything a crash or a dead receiver left behind.

Specs are cached in this process and refreshed from Subscription events and at start-up.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog
from sqlalchemy import Connection, func, select

from gateway.alerts.subscriptions import (
    Deliverer,
    EventFocus,
    SubscriptionSpec,
    SubscriptionStateRepository,
    Topic,
    matches,
    parse_subscription,
    utcnow,
)
from gateway.events.dedupe import RecentSeqs
from gateway.events.threads import in_thread
from gateway.fhir.errors import FhirError
from gateway.store.api import Store, UnitOfWork
from gateway.store.schema import resource as resource_table
from gateway.store.search.query import SearchQuery
from gateway.types import JSON

if TYPE_CHECKING:
    from gateway.fhir.access import MaySee

log = structlog.get_logger(__name__)

_SERVER_WRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("subscription_server_write", default=False)
TICK_SECONDS = 1.0
RECOVERY_AFTER = timedelta(seconds=2)
"""The timer recovers events left undelivered this long. Younger ones are in the hands of the
flush that numbered them (perhaps in another process, its delivery mark not yet written): the
timer taking them too would send duplicates under load."""
_LOAD_LIMIT = 10_000
_REFRESH_OVERLAP = timedelta(seconds=5)  # a late-committing write is never missed
_NEWEST_SUBSCRIPTION = select(func.max(resource_table.c.last_updated)).where(
    resource_table.c.res_type == "Subscription"
)


@dataclass(frozen=True)
class Numbered:
    """Topic events decided and numbered, not yet announced: the items, (item index, subscription,
    focus) for each that passed filters and consent, and per those (number, new) or None (`off`)."""

    items: Sequence[tuple[str, EventFocus, Mapping[str, Iterable[str]]]]
    planned: list[tuple[int, SubscriptionSpec, EventFocus]]
    numbers: list[tuple[int, bool] | None]


class EventLike(Protocol):
    """The fields of `gateway.events.Event` a consumer reads."""

    @property
    def seq(self) -> int: ...
    @property
    def res_type(self) -> str: ...
    @property
    def res_id(self) -> str: ...
    @property
    def version_id(self) -> int: ...
    @property
    def method(self) -> str: ...


@contextmanager
def server_write() -> Iterator[None]:
    """Mark writes in this context as the server's own status write-back (not a client request)."""
    token = _SERVER_WRITE.set(True)
    try:
        yield
    finally:
        _SERVER_WRITE.reset(token)


class SubscriptionService:
    """Owns the Subscription lifecycle and topic publishing for one gateway process."""

    def __init__(
        self,
        store: Store,
        deliverer: Deliverer,
        repo: SubscriptionStateRepository,
        topics: Mapping[str, Topic],
        *,
        require_https: bool = False,
        clock: Callable[[], datetime] = utcnow,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self.store = store
        self.deliverer = deliverer
        self.repo = repo
        self.topics = topics
        # Who may be told about what: for (subscription id, focus type, focus id) items, may each
        # subscriber see it? Set by the wiring when consent is on; unset means every subscriber may.
        # The function takes the caller's unit of work when it has one (deciding inside its transaction).
        self.may_see: MaySee | None = None
        self._require_https = require_https
        self._clock = clock
        self._tick_seconds = tick_seconds
        self.specs: dict[str, SubscriptionSpec] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._flushing: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._timer: asyncio.Task[None] | None = None
        self._handled = RecentSeqs()
        self._watermark = datetime.min

    # --- before write ---------------------------------------------------------------------------

    def check(self, resource: JSON) -> JSON:
        """`Store.before_write` hook: validate (FhirError 400) and take the status out of the client's hands."""
        spec = self.parse(resource)
        if _SERVER_WRITE.get():
            return resource
        resource = dict(resource)
        resource["status"] = "off" if spec.status == "off" else "requested"
        return resource

    def parse(self, resource: JSON) -> SubscriptionSpec:
        return parse_subscription(resource, self.topics, require_https=self._require_https)

    # --- after commit ---------------------------------------------------------------------------

    async def handle(self, event: EventLike) -> None:
        """Bus consumer: keep specs, delivery state and the stored status in step with Subscription writes."""
        if event.res_type != "Subscription" or event.seq in self._handled:
            return
        self._handled.add(event.seq)
        if event.method == "DELETE":
            await self.forget(event.res_id)
            return
        stored = await in_thread(self._current, event.res_id)
        if stored is None:
            await self.forget(event.res_id)
            return
        await self.adopt(stored)

    async def adopt(self, resource: JSON) -> None:
        """Cache the spec and, unless this is our own status write-back, register and handshake."""
        try:
            spec = self.parse(resource)
        except FhirError:
            log.warning("subscription.unparseable", subscription=resource.get("id"))
            return
        self._replace_specs([(spec.id, spec)])
        state = await in_thread(self.repo.get, spec.id)
        if state is not None and resource.get("status") == state.status and state.status in ("active", "error"):
            return
        self._spawn(self._activate(spec))

    async def forget(self, sub_id: str) -> None:
        self._replace_specs([(sub_id, None)])
        await in_thread(self.repo.remove, sub_id)

    async def _activate(self, spec: SubscriptionSpec) -> None:
        state = await self.deliverer.activate(spec)
        await in_thread(self._write_status, spec.id, state.status)

    def _current(self, sub_id: str) -> JSON | None:
        with self.store.reader() as uow:
            stored = uow.get("Subscription", sub_id)
        if stored is None or stored.deleted:
            return None
        return stored.json()

    def _write_status(self, sub_id: str, status: str) -> None:
        """Store the delivery status on the resource; a concurrent client write wins (If-Match)."""
        with server_write(), self.store.writer() as uow:
            current = uow.get("Subscription", sub_id, for_update=True)
            if current is None or current.deleted:
                return
            resource = current.json()
            if resource.get("status") == status:
                return
            resource["status"] = status
            with suppress(FhirError):
                uow.update(resource, if_match=current.version_id)

    # --- start-up and timers ----------------------------------------------------------------------

    async def load(self) -> None:
        """Read every stored Subscription; handshake those still `requested` (e.g. written while down)."""
        resources = await in_thread(self._all)
        for resource in resources:
            try:
                spec = self.parse(resource)
            except FhirError:
                log.warning("subscription.unparseable", subscription=resource.get("id"))
                continue
            self._replace_specs([(spec.id, spec)])
            state = await in_thread(self.repo.get, spec.id)
            if state is None or resource.get("status") == "requested":
                self._spawn(self._activate(spec))

    def _all(self) -> list[JSON]:
        with self.store.reader() as uow:
            page = uow.search(SearchQuery("Subscription", count=_LOAD_LIMIT, total="none"))
        return [row.json() for row in page.rows]

    def start(self) -> None:
        if self._timer is None:
            self._timer = asyncio.create_task(self._tick_forever())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.deliverer.settle()  # what was delivered is recorded as delivered
        await self.deliverer.release_leases()  # the other processes need not wait for them to run out

    async def refresh(self) -> None:
        """Pick up Subscriptions another process handled (each process caches the specs it publishes to)."""
        self._apply(await in_thread(self._changed))

    def _apply(self, changes: list[tuple[str, JSON | None]]) -> None:
        """Take in changed Subscriptions (None: gone; one that no longer parses is dropped)."""
        if changes:
            self._replace_specs([(sub_id, self._parsed(resource)) for sub_id, resource in changes])

    def _parsed(self, resource: JSON | None) -> SubscriptionSpec | None:
        if resource is None:
            return None
        try:
            return self.parse(resource)
        except FhirError:
            return None

    def _replace_specs(self, changes: Iterable[tuple[str, SubscriptionSpec | None]]) -> None:
        """Set (None: remove) these specs. The map is replaced, not changed in place: worker
        threads iterate it while they number events."""
        specs = dict(self.specs)
        for sub_id, spec in changes:
            specs.pop(sub_id, None)
            if spec is not None:
                specs[sub_id] = spec
        self.specs = specs

    def _catch_up(self, conn: Connection) -> None:
        """Before numbering: learn of Subscriptions written since the last refresh, in the numbering
        transaction. Only one process consumes each Subscription write (a Redis consumer group), the
        others learned of it at their next timer round: an alert numbered by another process within
        that second was never sent to a Subscription already active (about one alert in 1,000-1,500 in
        the two-process bench). One probe of the newest write when nothing changed."""
        newest = conn.execute(_NEWEST_SUBSCRIPTION).scalar()
        if newest is not None and newest > self._watermark:
            self._apply(self._changed_rows(conn))

    def _catch_up_alone(self) -> None:
        with self.store.reader() as uow:
            self._catch_up(uow.conn)

    def _changed(self) -> list[tuple[str, JSON | None]]:
        with self.store.reader() as uow:
            return self._changed_rows(uow.conn)

    def _changed_rows(self, conn: Connection) -> list[tuple[str, JSON | None]]:
        r = resource_table.c
        since = (
            self._watermark - _REFRESH_OVERLAP if self._watermark > datetime.min + _REFRESH_OVERLAP else datetime.min
        )
        rows = conn.execute(
            select(r.res_id, r.deleted, r.content, r.last_updated)
            .where(r.res_type == "Subscription", r.last_updated > since)
            .order_by(r.last_updated)
        ).all()
        out: list[tuple[str, JSON | None]] = []
        for row in rows:
            self._watermark = max(self._watermark, row.last_updated)
            out.append((row.res_id, None if row.deleted or row.content is None else orjson.loads(row.content)))
        return out

    async def tick(self) -> None:
        """One timer round: learn of new Subscriptions, retry what is pending, send due heartbeats."""
        await self.refresh()
        await self.deliverer.flush_pending(self.specs, older_than=RECOVERY_AFTER)
        await self.deliverer.send_due_heartbeats(self.specs)

    async def _tick_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a bad round must not stop the timer; the next one retries
                log.exception("subscription.tick_failed")
            await asyncio.sleep(self._tick_seconds)

    # --- publishing ---------------------------------------------------------------------------------

    async def publish(self, topic: str, focus: EventFocus, values: Mapping[str, Iterable[str]]) -> dict[str, int]:
        """Number and log `focus` for every subscription on `topic` whose filters pass; returns numbers.

        Delivery follows in a per-subscription background flush, so one slow receiver delays nobody else.
        """
        return (await self.publish_many([(topic, focus, values)]))[0]

    async def publish_many(
        self, items: Sequence[tuple[str, EventFocus, Mapping[str, Iterable[str]]]]
    ) -> list[dict[str, int]]:
        """`publish` for several topic events at once: one consent pass and ONE transaction numbers
        them all (in order, so each subscription's numbers follow the events' order). Returns the
        numbers per item.

        Only a newly numbered event kicks a delivery; a repeat (a redelivered bus event) keeps its
        number and is left to the flush that is already under way, or to the timer.
        """
        await in_thread(self._catch_up_alone)
        planned = self._plan(items)
        if planned and self.may_see is not None:
            asked = [(s.id, f.res_type, f.res_id) for _, s, f in planned]
            allowed = await in_thread(self.may_see, asked, None, _sources(planned))
            planned = [p for p, ok in zip(planned, allowed, strict=True) if ok]
        numbered: list[tuple[int, bool] | None] = []
        if planned:
            events = [(s.id, s.topic, f, s.heartbeat_period) for _, s, f in planned]
            numbered = await in_thread(self.repo.record_events, events, now=self._clock())
        return self.announce(Numbered(items, planned, numbered))

    def number_in(
        self, uow: UnitOfWork, items: Sequence[tuple[str, EventFocus, Mapping[str, Iterable[str]]]]
    ) -> Numbered:
        """Decide and number topic events inside the caller's write transaction (blocking: call it in a
        worker thread), so they commit with the write that caused them; their foci are versions that
        transaction wrote (so none has a number yet). Call `announce` with the result once that
        transaction has committed."""
        self._catch_up(uow.conn)
        planned = self._plan(items)
        if planned and self.may_see is not None:
            allowed = self.may_see([(s.id, f.res_type, f.res_id) for _, s, f in planned], uow, _sources(planned))
            planned = [p for p, ok in zip(planned, allowed, strict=True) if ok]
        numbered: list[tuple[int, bool] | None] = []
        if planned:
            numbered = self.repo.record_events(
                [(s.id, s.topic, f, s.heartbeat_period) for _, s, f in planned],
                now=self._clock(),
                conn=uow.conn,
                written_here=True,
            )
        return Numbered(items, planned, numbered)

    def numbered_versions(
        self, uow: UnitOfWork, topic: str, foci: Sequence[tuple[str, str, int]]
    ) -> set[tuple[str, str, int]]:
        """The focus versions among these already numbered for a subscription on `topic` (in the
        caller's transaction). Numbering is all or nothing per transaction, so one found was
        decided and numbered for every subscriber it was meant for when it was written."""
        subs = [spec.id for spec in self.specs.values() if spec.topic == topic]
        return self.repo.numbered_versions(uow.conn, subs, foci)

    def announce(self, numbered: Numbered) -> list[dict[str, int]]:
        """After the numbers are committed: hand each new event to its subscription's delivery. Returns
        the numbers per item."""
        out: list[dict[str, int]] = [{} for _ in numbered.items]
        for (index, spec, focus), got in zip(numbered.planned, numbered.numbers, strict=True):
            if got is None:
                continue
            number, new = got
            out[index][spec.id] = number
            if new:
                self.deliverer.remember(spec, number, focus)
                self._kick(spec.id)
        for (topic, focus, _), numbers in zip(numbered.items, out, strict=True):
            if numbers:
                log.info("subscription.published", topic=topic, focus=focus.reference, events=numbers)
        return out

    def _plan(
        self, items: Sequence[tuple[str, EventFocus, Mapping[str, Iterable[str]]]]
    ) -> list[tuple[int, SubscriptionSpec, EventFocus]]:
        """(item index, subscription, focus) for every subscription on an item's topic whose filters pass."""
        planned: list[tuple[int, SubscriptionSpec, EventFocus]] = []
        for index, (topic, focus, values) in enumerate(items):
            for spec in self.specs.values():
                if spec.topic == topic and spec.status != "off" and matches(spec, values):
                    planned.append((index, spec, focus))
        return planned

    def _kick(self, sub_id: str) -> None:
        if sub_id in self._flushing:
            self._again.add(sub_id)
            return
        task = self._spawn(self._flush_loop(sub_id))
        self._flushing[sub_id] = task

    async def _flush_loop(self, sub_id: str) -> None:
        try:
            while True:
                self._again.discard(sub_id)
                spec = self.specs.get(sub_id)
                if spec is not None:
                    await self.deliverer.flush(spec)
                if sub_id not in self._again:
                    return
        finally:
            self._flushing.pop(sub_id, None)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("subscription.task_failed", error=type(task.exception()).__name__)

    async def idle(self) -> None:
        """Wait until every background handshake and flush has finished, and its marks are written
        (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.deliverer.settle()


def _sources(planned: Sequence[tuple[int, SubscriptionSpec, EventFocus]]) -> dict[str, str | None]:
    """Each planned subscriber's source organisation, from its spec (current: caught up just before)."""
    return {spec.id: spec.source_organization for _, spec, _ in planned}
