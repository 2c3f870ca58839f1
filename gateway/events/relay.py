"""Moves committed writes from the outbox onto the bus, in seq order, marking each row only after
the bus has it. The outbox is the source of truth: `store.on_commit` only wakes the relay early,
and a timer poll finds what other processes (or a crashed run) left behind.

On SQLite the running relay does not wait for a batch's mark before claiming the next batch: marks
are written in the background (all that queued up, in one transaction) while the next batch is
claimed above the last seq published. A mark that fails sends the relay back to the outbox's first undispatched row, so
the worst case is a repeat, which consumers recognise by seq.

Background marks wait up to `mark_delay` (or until a batch's worth queued up) so that many batches
share one mark transaction: a lone MLLP sender's messages each arrive as a batch of one, and one
mark (an fsync, and a wait for the lock the intake holds) per message cost more than the message's
own commit. The rows stay undispatched meanwhile, so a crash in that window only repeats them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog

from gateway.events.model import EventBus, check_cancelled
from gateway.events.outbox import claim, mark_dispatched
from gateway.events.threads import in_thread, in_thread_unhurried
from gateway.store.api import SILENT_TYPES, Store, StoredResource

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RelayResult:
    claimed: int
    dispatched: int

    @property
    def complete(self) -> bool:
        return self.dispatched == self.claimed


class OutboxRelay:
    """Claims undispatched outbox rows and publishes them on `bus`."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        *,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        retry_base: float = 0.2,
        retry_max: float = 30.0,
        mark_delay: float = 0.25,
    ) -> None:
        self.store = store
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.mark_delay = mark_delay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._halt = asyncio.Event()  # set by stop(); a plain Event binds to no loop until awaited
        self._after: int | None = None  # SQLite: last seq published whose mark may be in flight
        self._unmarked: list[int] = []  # published, mark not yet written
        self._marking: asyncio.Task[None] | None = None
        self._mark_now = asyncio.Event()  # cuts `mark_delay` short (a full batch queued, or settle())
        self._settling = 0
        store.on_commit(self._on_commit)

    def _on_commit(self, written: list[StoredResource]) -> None:
        # Called in whichever thread committed; only a hint, so a closed loop is not an error.
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        if all(stored.type in SILENT_TYPES for stored in written):
            return  # nothing of it is in the outbox (the audit writer's commits): no claim for nothing
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    async def dispatch_once(self, *, mark_later: bool = False) -> RelayResult:
        """Claim one batch, publish it, mark what the bus took. Raises if the database fails.

        With `mark_later` (the running relay) a SQLite batch is marked in the background.
        """
        after = self._after if mark_later else None
        claiming = asyncio.ensure_future(in_thread(claim, self.store, self.batch_size, after=after))
        try:
            held = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # The claim runs on in its thread; wait for it so its row locks are given back.
            (await claiming).release()
            raise
        try:
            if not held.events:
                return RelayResult(0, 0)
            try:
                done = await self.bus.publish(held.events)
            except Exception:
                log.exception("events.publish_failed", first_seq=held.events[0].seq, count=len(held.events))
                done = 0
            seqs = [e.seq for e in held.events[:done]]
            if mark_later and not held.holds_locks:
                if seqs:
                    self._after = seqs[-1]
                    self._mark_later(seqs)
            else:
                await in_thread(held.mark, seqs)
            return RelayResult(len(held.events), done)
        finally:
            if held.holds_locks:  # a SQLite claim holds nothing: no thread hop to give it back
                await in_thread(held.release)

    def _mark_later(self, seqs: list[int]) -> None:
        """Queue the marks; one background task writes all that queued up, in one transaction."""
        self._unmarked.extend(seqs)
        if len(self._unmarked) >= self.batch_size:
            self._mark_now.set()
        if self._marking is None or self._marking.done():
            self._marking = asyncio.ensure_future(self._write_marks())

    async def _write_marks(self) -> None:
        while self._unmarked:
            if self.mark_delay > 0 and not self._mark_now.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._mark_now.wait(), self.mark_delay)
            if not self._settling:
                self._mark_now.clear()
            seqs, self._unmarked = self._unmarked, []
            try:
                await in_thread_unhurried(mark_dispatched, self.store, seqs)
            except Exception:
                log.exception("events.mark_failed", first_seq=seqs[0], count=len(seqs))
                self._after = None  # claim from the first undispatched row again

    async def settle(self) -> None:
        """Write every queued mark now, and wait until it is written."""
        self._settling += 1
        self._mark_now.set()
        try:
            while self._marking is not None and not self._marking.done():
                await asyncio.shield(self._marking)
        finally:
            self._settling -= 1
            if not self._settling:
                self._mark_now.clear()

    async def drain(self) -> int:
        """Dispatch until nothing is pending or a publish fails; the number dispatched."""
        total = 0
        while True:
            result = await self.dispatch_once()
            total += result.dispatched
            if not result.complete or result.claimed < self.batch_size:
                return total

    def _delay(self, failures: int) -> float:
        return float(min(self.retry_max, self.retry_base * 2 ** (failures - 1)))

    def stop(self) -> None:
        """Ask `run` to return after the batch in hand is marked (rather than cancelling it mid-way)."""
        self._halt.set()
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Relay until stopped or cancelled: after each commit hint, every `poll_interval`, with backoff on failure."""
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        failures = 0
        try:
            while not self._halt.is_set():
                check_cancelled()
                wake.clear()  # a commit during the claim below sets it again
                try:
                    result = await self.dispatch_once(mark_later=True)
                except Exception:
                    log.exception("events.relay_failed")
                    result = RelayResult(1, 0)
                if not result.complete:
                    failures += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._halt.wait(), self._delay(failures))  # commits don't cut it short
                    continue
                failures = 0
                if result.claimed >= self.batch_size:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.poll_interval)
        finally:
            await asyncio.shield(self.settle())
            self._after = None
            self._loop = self._wake = None
            self._halt.clear()
