"""Group commit: inputs waiting at the same moment are applied by one writer in one transaction.

Each input on its own costs a commit (an fsync on SQLite with `synchronous=FULL`, a WAL flush on
PostgreSQL), and several writer threads only queue on the database's write lock. One writer
thread that takes whatever has queued up while it was busy pays one commit for all of them.

The batch forms by itself: nothing waits for company unless `max_wait` says so. A lone sender's
message finds the writer idle and goes at once, alone; under load the queue fills while the
previous batch commits, and the next batch takes it (at most `max_batch`). Inputs are applied in
the order they were submitted. The caller's future completes only after `apply_batch` returned,
which for the intake means after the transaction committed: the ACK waits for the commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
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
    item: T
    future: Future[R]


_STOP = object()


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
        max_wait: float = 0.0,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._apply_batch = apply_batch
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.name = name
        self._queue: queue.SimpleQueue[_Pending[T, R] | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._closed = False
        self.batches = 0  # diagnostics: batches applied and inputs in them
        self.applied = 0

    def submit(self, item: T) -> Future[R]:
        """Queue `item`; the future holds its result once its batch has been applied."""
        future: Future[R] = Future()
        with self._guard:
            if self._closed:
                raise RuntimeError(f"{self.name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._queue.put(_Pending(item, future))
        return future

    async def apply(self, item: T) -> R:
        """`submit` for asyncio callers: wait for the result without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(item))

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
                if remaining <= 0:
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
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
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
        for pending, result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
