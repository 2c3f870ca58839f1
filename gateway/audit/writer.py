"""Getting AuditEvents to storage without slowing the request path.

`record()` only appends to an in-memory buffer under a lock: it never waits on I/O. A daemon
thread hands batches to `write_batch` (for example one multi-row INSERT) when `max_events` have
gathered or the oldest has waited `max_delay_ms`. A failing `write_batch` is retried with
back-off and the batch is kept, never dropped; `close()` flushes what is left and returns any
events it still could not write, so the caller can spool them rather than lose them.

Given `idle` (the gateway's `Activity.wait_idle`), a due batch first waits for a moment with no
request in flight, for at most `max_defer_ms` after its oldest event: storing a batch takes the
interpreter lock in turns with the request being served, and would add its time to that request.
`flush()` and `close()` never wait for a gap.

The buffer is unbounded by design: refusing or dropping an audit event would either block the
request or lose the record that someone saw data. Memory is the limit; `pending` is exposed for
a health check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from gateway.types import JSON

log = logging.getLogger(__name__)

WriteBatch = Callable[[list[JSON]], None]
WaitIdle = Callable[[float], bool]
_GAP_SLICE_S = 0.05  # how often a batch waiting for a gap looks whether a flush or close wants it


class AuditSink(Protocol):
    """Where AuditEvents go. `record` must return at once and must not raise for I/O reasons."""

    def record(self, event: JSON) -> None: ...


class ListAuditSink:
    """Keeps events in a list: for tests and the in-process default."""

    def __init__(self) -> None:
        self.events: list[JSON] = []
        self._lock = threading.Lock()

    def record(self, event: JSON) -> None:
        with self._lock:
            self.events.append(event)


class BatchingAuditWriter:
    """An `AuditSink` that batches events to `write_batch` on its own thread."""

    def __init__(
        self,
        write_batch: WriteBatch,
        *,
        max_events: int = 100,
        max_delay_ms: float = 200,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        close_attempts: int = 3,
        name: str = "audit-writer",
        idle: WaitIdle | None = None,
        max_defer_ms: float = 1000,
    ) -> None:
        if max_events < 1 or max_delay_ms <= 0 or max_defer_ms < 0:
            raise ValueError("max_events must be >= 1, max_delay_ms > 0 and max_defer_ms >= 0")
        self._write = write_batch
        self._max_events = max_events
        self._max_delay = max_delay_ms / 1000
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._close_attempts = close_attempts
        self._idle = idle
        self._max_defer = max_defer_ms / 1000
        self._batch_since = 0.0  # when the oldest event of the batch in hand was recorded
        self._buffer: list[JSON] = []
        self._oldest: float | None = None
        self._inflight = 0
        self._flush_wanted = False
        self._closed = False
        self._unwritten: list[JSON] = []
        self._cond = threading.Condition()
        self.written = 0
        self.failures = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Events accepted but not yet written (buffered plus in flight)."""
        with self._cond:
            return len(self._buffer) + self._inflight

    def record(self, event: JSON) -> None:
        """Queue one event; never blocks on I/O. Raises RuntimeError after `close()`."""
        with self._cond:
            if self._closed:
                raise RuntimeError("audit writer is closed")
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(event)
            if len(self._buffer) >= self._max_events or len(self._buffer) == 1:
                self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Write everything queued so far; True when it was all written within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_wanted = True
            self._cond.notify_all()
            while self._buffer or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 10.0) -> list[JSON]:
        """Stop accepting, write what is left, stop the thread. Returns events that could not be written."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            leftovers = self._unwritten + self._buffer
            self._unwritten, self._buffer = [], []
            return leftovers

    async def aclose(self, timeout: float = 10.0) -> list[JSON]:
        """`close()` without blocking the event loop (for the app's shutdown hook)."""
        import asyncio

        return await asyncio.to_thread(self.close, timeout)

    # -- the writer thread ------------------------------------------------------------------

    def _next_batch(self) -> list[JSON] | None:
        with self._cond:
            while True:
                if self._buffer:
                    due = (self._oldest or 0.0) + self._max_delay
                    ready = (
                        len(self._buffer) >= self._max_events
                        or self._flush_wanted
                        or self._closed
                        or time.monotonic() >= due
                    )
                    if ready:
                        self._batch_since = self._oldest or time.monotonic()
                        batch = self._buffer[: self._max_events]
                        del self._buffer[: self._max_events]
                        self._oldest = time.monotonic() if self._buffer else None
                        self._inflight = len(batch)
                        return batch
                    self._cond.wait(max(due - time.monotonic(), 0.001))
                elif self._closed:
                    return None
                else:
                    self._flush_wanted = False
                    self._cond.notify_all()
                    self._cond.wait()

    def _wait_for_gap(self) -> None:
        if self._idle is None:
            return
        while not (self._flush_wanted or self._closed):
            remaining = self._batch_since + self._max_defer - time.monotonic()
            if remaining <= 0 or self._idle(min(remaining, _GAP_SLICE_S)):
                return

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._wait_for_gap()
            delivered = self._deliver(batch)
            with self._cond:
                self._inflight = 0
                if delivered:
                    self.written += len(batch)
                else:
                    self._unwritten.extend(batch)
                self._cond.notify_all()

    def _deliver(self, batch: list[JSON]) -> bool:
        delay = self._retry_initial
        attempts = 0
        while True:
            try:
                self._write(batch)
                return True
            except Exception:
                attempts += 1
                self.failures += 1
                log.exception("audit batch write failed (%d events, attempt %d)", len(batch), attempts)
            with self._cond:
                if self._closed and attempts >= self._close_attempts:
                    return False
                self._cond.wait(delay)
            delay = min(delay * 2, self._retry_max)
