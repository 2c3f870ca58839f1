"""Redis Streams bus: several gateway processes share delivery.

The relay XADDs each event to one stream. Every consumer name ("alerts", "subscriptions") is a
consumer group, and each process joins each group under its own consumer id, so an event goes to
one process per group. A message is XACKed only after the handler returned; one that failed, or
that a dead process had read, stays pending and is taken over with XAUTOCLAIM once it has been idle
for `claim_idle_ms`. Groups start at the beginning of the stream, so a group created late still
sees every event the stream holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.events.model import Consumer, Event, check_cancelled

log = structlog.get_logger(__name__)

DEFAULT_STREAM = "gateway:events"


def default_consumer_id() -> str:
    """Unique per process run, so a restarted process never inherits a dead one's pending list."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStreamBus:
    def __init__(
        self,
        redis: Redis,
        consumers: Mapping[str, Consumer],
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int = 1_000_000,
        consumer_id: str | None = None,
        batch: int = 100,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        claim_every: float = 5.0,
        retry_base: float = 0.2,
        retry_max: float = 30.0,
        owns_client: bool = False,
    ) -> None:
        self.redis = redis
        self.consumers = dict(consumers)
        self.stream = stream
        self.maxlen = maxlen
        self.consumer_id = consumer_id or default_consumer_id()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.claim_every = claim_every
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._owns_client = owns_client
        self._groups: set[str] = set()
        self._acks: dict[str, list[Any]] = {}  # group -> ids handled, XACK not yet sent

    @classmethod
    def from_url(cls, url: str, consumers: Mapping[str, Consumer], **options: Any) -> RedisStreamBus:
        return cls(Redis.from_url(url, decode_responses=True), consumers, owns_client=True, **options)

    # -- producing ----------------------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> int:
        """XADD all events in one round trip; all or (as far as the relay knows) nothing."""
        if not events:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self.stream, event.to_fields(), maxlen=self.maxlen, approximate=True)
            await pipe.execute()
        return len(events)

    # -- consuming ----------------------------------------------------------------------------

    async def ensure_group(self, group: str) -> None:
        if group in self._groups:
            return
        try:
            await self.redis.xgroup_create(self.stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(group)

    async def _handle(self, group: str, fields: Any) -> bool:
        """Run the group's consumer on one message; True when it returned (the message may be acked)."""
        if not fields:  # trimmed away before it was handled: nothing left to deliver
            return True
        event = Event.from_fields(fields)
        try:
            await self.consumers[group].handle(event)
        except Exception:
            log.exception("events.consumer_failed", consumer=group, seq=event.seq, ref=event.reference)
            return False
        return True

    async def _handle_many(self, group: str, messages: Sequence[tuple[Any, Any]]) -> int:
        """A batch-taking consumer gets all messages in one call; otherwise (or if the batch fails)
        each message is handled on its own. The ids of those handled are queued for one XACK
        (`_acks`), sent by the caller: one command per batch rather than one per message."""
        acks = self._acks.setdefault(group, [])
        live = [(msg_id, fields) for msg_id, fields in messages if fields]
        if len(live) > 1 and getattr(self.consumers[group], "handle_batch", None) is not None:
            events = [Event.from_fields(fields) for _, fields in live]
            try:
                await self.consumers[group].handle_batch(events)  # type: ignore[attr-defined]
            except Exception:
                log.warning("events.batch_failed", consumer=group, first_seq=events[0].seq, count=len(events))
            else:
                acks.extend(msg_id for msg_id, _ in messages)
                return len(messages)
        handled = 0
        for msg_id, fields in messages:
            if await self._handle(group, fields):
                acks.append(msg_id)
                handled += 1
        return handled

    async def _send_acks(self, group: str) -> None:
        """XACK what was handled and not yet acked (one command)."""
        acks = self._acks.get(group)
        if acks:
            self._acks[group] = []
            await self.redis.xack(self.stream, group, *acks)

    async def read(self, group: str, *, new: bool = True, block_ms: int | None = None, ack_later: bool = False) -> int:
        """One XREADGROUP: new messages (`>`), or this consumer's own pending ones; the number handled.

        What was handled is XACKed at the end, in one command; with `ack_later` (the worker's loop)
        the XACK waits for the next read and goes in the same round trip, before its XREADGROUP.
        """
        await self.ensure_group(group)
        streams = {self.stream: ">" if new else "0"}
        block = block_ms if new else None
        acks, self._acks[group] = self._acks.get(group) or [], []
        if acks:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(self.stream, group, *acks)
                pipe.xreadgroup(group, self.consumer_id, streams, count=self.batch, block=block)
                try:
                    _, response = await pipe.execute()
                except BaseException:
                    self._acks[group] = acks + self._acks[group]  # perhaps not applied: sent again next time
                    raise
        else:
            response = await self.redis.xreadgroup(
                group,
                self.consumer_id,
                streams,
                count=self.batch,
                block=block,
            )
        handled = 0
        for _stream, messages in response or []:
            handled += await self._handle_many(group, messages)
        if not ack_later:
            await self._send_acks(group)
        return handled

    async def reclaim(self, group: str) -> int:
        """Take over messages idle longer than `claim_idle_ms` (a dead worker's, or failed ones) and handle them."""
        await self.ensure_group(group)
        handled = 0
        start = "0-0"
        while True:
            response = await self.redis.xautoclaim(
                self.stream, group, self.consumer_id, self.claim_idle_ms, start_id=start, count=self.batch
            )
            next_id, messages = _text(response[0]), response[1]
            handled += await self._handle_many(group, messages)
            await self._send_acks(group)
            if next_id == "0-0":
                return handled
            start = next_id

    async def work(self, group: str) -> None:
        """Consume `group` until cancelled; Redis outages are retried with backoff."""
        failures = 0
        next_claim = 0.0
        recovered = False
        while True:
            check_cancelled()
            try:
                if not recovered:  # what this consumer id read but never acked (none for a fresh id)
                    await self.read(group, new=False)
                    recovered = True
                if time.monotonic() >= next_claim:
                    await self.reclaim(group)
                    next_claim = time.monotonic() + self.claim_every
                await self.read(group, block_ms=self.block_ms, ack_later=True)
                failures = 0
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):  # best effort: unacked ones are only handled again
                    await asyncio.wait_for(asyncio.shield(self._send_acks(group)), 1.0)
                raise
            except Exception:
                failures += 1
                log.exception("events.worker_failed", consumer=group, failures=failures)
                self._groups.discard(group)  # the stream may have been lost with Redis
                await asyncio.sleep(min(self.retry_max, self.retry_base * 2 ** (failures - 1)))

    async def run(self) -> None:
        """One worker per consumer group, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            for group in self.consumers:
                tasks.create_task(self.work(group), name=f"events-worker-{group}")

    async def close(self) -> None:
        if self._owns_client:
            await self.redis.aclose()  # type: ignore[attr-defined]  # stubs predate redis 5
