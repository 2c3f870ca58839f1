"""Group commit: inputs waiting at the same moment are applied by one writer in one transaction.

Each input on its own costs a commit (an fsync on SQLite with `synchronous=FULL`, a WAL flush on
PostgreSQL), and several writer threads only queue on the database's write lock. One writer
thread that takes whatever has queued up while it was busy pays one commit for all of them.

A batch takes whatever has queued up (at most `max_batch`). It waits for more only when there is
company to wait for, as PostgreSQL's `commit_delay`/`commit_siblings` do: each input names its
origin (the MLLP connection or HTTP request task that sent it), and while other origins have
sent something in the last `active_window` seconds and are not in the batch yet, the writer
waits for them up to `max_wait`. A lone sender is never in that case, so its message goes at
once, alone. Inputs are applied in the order they were submitted. The caller's future completes
only after `apply_batch` returned, which for the intake means after the transaction committed:
the ACK waits for the commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

__all__ = ["GroupCommitter"]

T = TypeVar("T")
R = TypeVar("R")

log = structlog.get_logger(__name__)


@dataclass
class _Pending(Generic[T, R]):
    """One input and who waits for it: a thread's `future`, or an asyncio `waiter` on `loop`."""

    item: T
    origin: Hashable | None
    future: Future[R] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[R] | None = None

    def start(self) -> bool:
        """False when the caller gave up before the batch began (the input is then not applied)."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        return self.waiter is not None and not self.waiter.cancelled()


def _settle(results: list[tuple[asyncio.Future[R], R | BaseException]]) -> None:
    """On the event loop: hand a batch's results to their waiters (one loop wake-up per batch)."""
    for waiter, result in results:
        if waiter.done():
            continue
        if isinstance(result, BaseException):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)


_STOP = object()


def _task_origin() -> Hashable | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _finished(origin: Hashable) -> bool:
    """A task origin that has ended (its connection closed) is no company to wait for."""
    return isinstance(origin, asyncio.Task) and origin.done()


class GroupCommitter(Generic[T, R]):
    """One writer thread applying submitted inputs in batches (started on first use).

    `apply_batch` applies inputs in order and returns one result per input: its outcome, or the
    exception that failed that input alone. If it raises, every input of the batch fails with it.
    """

    def __init__(
        self,
        apply_batch: Callable[[Sequence[T]], Sequence[R | BaseException]],
        *,
        max_batch: int = 32,
        max_wait: float = 0.002,
        active_window: float = 0.5,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._apply_batch = apply_batch
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.active_window = active_window
        self.name = name
        self._seen: dict[Hashable, float] = {}  # origin -> when it last submitted
        self._queue: queue.SimpleQueue[_Pending[T, R] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._closed = False
        self.batches = 0  # diagnostics: batches applied and inputs in them
        self.applied = 0

    def submit(self, item: T, origin: Hashable | None = None) -> Future[R]:
        """Queue `item`; the future holds its result once its batch has been applied.

        `origin` names the sender (e.g. its connection) so that a batch may wait for the others.
        """
        future: Future[R] = Future()
        self._put(_Pending(item, origin, future=future))
        return future

    def _put(self, pending: _Pending[T, R]) -> None:
        with self._guard:
            if pending.origin is not None:
                self._seen[pending.origin] = time.monotonic()
            if self._closed:
                raise RuntimeError(f"{self.name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put(pending)

    @property
    def queued(self) -> int:
        """Inputs waiting for the writer (approximate, for diagnostics and tests)."""
        return self._queue.qsize()

    async def apply(self, item: T) -> R:
        """`submit` for asyncio callers (the current task is the origin): wait without blocking the loop.

        The writer settles all of a batch's asyncio waiters with one call into their loop.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] = loop.create_future()
        self._put(_Pending(item, _task_origin(), loop=loop, waiter=waiter))
        return await waiter

    def close(self, timeout: float | None = 10.0) -> None:
        """Apply what is queued, then stop the writer thread; later submits raise."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    # -- the writer thread -----------------------------------------------------------------------

    def _company(self, batch: list[_Pending[T, R]]) -> int:
        """How many recently active origins have nothing in `batch` (so it may wait for them)."""
        now = time.monotonic()
        with self._guard:
            for origin, seen in list(self._seen.items()):
                if now - seen > self.active_window or _finished(origin):
                    del self._seen[origin]
            active = set(self._seen)
        return len(active - {p.origin for p in batch})

    def _take(self) -> tuple[list[_Pending[T, R]], bool]:
        """The next batch (blocking for its first input); and whether a stop was asked for."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        assert isinstance(first, _Pending)
        batch: list[_Pending[T, R]] = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._company(batch):
                    break
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if nxt is _STOP:
                return batch, True
            assert isinstance(nxt, _Pending)
            batch.append(nxt)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._take()
            if batch:
                self._apply(batch)

    def _apply(self, batch: list[_Pending[T, R]]) -> None:
        live = [p for p in batch if p.start()]
        if not live:
            return
        try:
            results = list(self._apply_batch([p.item for p in live]))
            if len(results) != len(live):
                raise RuntimeError(f"apply_batch returned {len(results)} results for {len(live)} inputs")
        except BaseException as exc:  # nothing of this batch is known to be applied: fail it all
            log.exception("intake.group_commit.failed", size=len(live))
            results = [exc] * len(live)
        self.batches += 1
        self.applied += len(live)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R | BaseException]]] = {}
        for pending, result in zip(live, results, strict=True):
            if pending.future is not None:
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            elif pending.loop is not None and pending.waiter is not None:
                by_loop.setdefault(pending.loop, []).append((pending.waiter, result))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                log.info("intake.group_commit.loop_closed", size=len(settled))
