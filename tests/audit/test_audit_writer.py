"""The batching audit writer: flushes by count and by time, never blocks `record`, never loses events."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.activity import Activity
from gateway.audit import BatchingAuditWriter, ListAuditSink
from gateway.types import JSON


class Recorder:
    """A fake `write_batch` that records batches; can be told to fail or to be slow."""

    def __init__(self, fail_times: int = 0, delay: float = 0.0) -> None:
        self.batches: list[list[JSON]] = []
        self.fail_times = fail_times
        self.delay = delay
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, batch: list[JSON]) -> None:
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            if self.fail_times > 0:
                self.fail_times -= 1
                raise OSError("database down")
            self.batches.append(list(batch))

    @property
    def ids(self) -> list[int]:
        return [e["n"] for batch in self.batches for e in batch]


def ev(n: int) -> JSON:
    return {"resourceType": "AuditEvent", "n": n}


def test_flushes_every_n_events() -> None:
    rec = Recorder()
    writer = BatchingAuditWriter(rec, max_events=10, max_delay_ms=60_000)
    for n in range(25):
        writer.record(ev(n))
    deadline = time.monotonic() + 2
    while len(rec.batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [len(b) for b in rec.batches] == [10, 10]
    assert writer.close() == []
    assert rec.ids == list(range(25)) and [len(b) for b in rec.batches] == [10, 10, 5]
    assert rec.threads == {"audit-writer"}


def test_flushes_after_max_delay() -> None:
    rec = Recorder()
    writer = BatchingAuditWriter(rec, max_events=1000, max_delay_ms=20)
    writer.record(ev(1))
    deadline = time.monotonic() + 2
    while not rec.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    assert rec.ids == [1]
    writer.close()


def test_record_never_waits_for_a_slow_store() -> None:
    rec = Recorder(delay=0.2)
    writer = BatchingAuditWriter(rec, max_events=100, max_delay_ms=1)
    writer.record(ev(0))
    time.sleep(0.02)  # the writer thread is now inside the slow write
    started = time.perf_counter()
    for n in range(1, 200):
        writer.record(ev(n))
    assert time.perf_counter() - started < 0.05
    assert writer.flush(timeout=5)
    assert sorted(rec.ids) == list(range(200))
    writer.close()


def test_failed_batches_are_retried_not_lost() -> None:
    rec = Recorder(fail_times=3)
    writer = BatchingAuditWriter(rec, max_events=5, max_delay_ms=5, retry_initial_s=0.001)
    for n in range(12):
        writer.record(ev(n))
    assert writer.flush(timeout=5)
    assert rec.ids == list(range(12)) and writer.failures == 3 and writer.written == 12
    assert writer.close() == [] and writer.pending == 0


def test_close_flushes_and_returns_what_could_not_be_written() -> None:
    rec = Recorder(fail_times=10**6)
    writer = BatchingAuditWriter(rec, max_events=100, max_delay_ms=60_000, retry_initial_s=0.001, close_attempts=2)
    for n in range(7):
        writer.record(ev(n))
    leftovers = writer.close(timeout=5)
    assert [e["n"] for e in leftovers] == list(range(7))
    with pytest.raises(RuntimeError):
        writer.record(ev(99))


def test_concurrent_producers_lose_nothing() -> None:
    rec = Recorder()
    writer = BatchingAuditWriter(rec, max_events=17, max_delay_ms=2)

    def produce(base: int) -> None:
        for n in range(500):
            writer.record(ev(base + n))

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.close() == []
    assert sorted(rec.ids) == sorted(k * 1000 + n for k in range(4) for n in range(500))
    assert all(len(b) <= 17 for b in rec.batches)


async def test_aclose_from_the_event_loop() -> None:
    rec = Recorder()
    writer = BatchingAuditWriter(rec, max_events=100, max_delay_ms=60_000)
    writer.record(ev(1))
    assert await writer.aclose() == []
    assert rec.ids == [1]


def wait_for(rec: Recorder, count: int, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while len(rec.ids) < count and time.monotonic() < deadline:
        time.sleep(0.005)


def busy_writer(max_defer_ms: float) -> tuple[Recorder, Activity, BatchingAuditWriter]:
    """A writer whose batches are due at once, in a gateway serving a request (never left here)."""
    rec, activity = Recorder(), Activity()
    writer = BatchingAuditWriter(
        rec, max_events=100, max_delay_ms=1, idle=activity.wait_idle, max_defer_ms=max_defer_ms
    )
    activity.enter()
    return rec, activity, writer


def test_a_due_batch_waits_for_the_requests_in_flight() -> None:
    """Writing a batch competes with the request being served (one GIL): it waits for a gap."""
    rec, activity, writer = busy_writer(max_defer_ms=60_000)
    writer.record(ev(1))
    time.sleep(0.1)
    assert rec.ids == [] and writer.pending == 1
    activity.leave()
    wait_for(rec, 1)
    assert rec.ids == [1]
    writer.close()


def test_a_batch_waits_for_a_gap_no_longer_than_max_defer() -> None:
    rec, _, writer = busy_writer(max_defer_ms=50)  # the request never ends: the gateway is busy throughout
    writer.record(ev(1))
    wait_for(rec, 1)
    assert rec.ids == [1]
    writer.close()


def test_flush_and_close_do_not_wait_for_a_gap() -> None:
    rec, _, writer = busy_writer(max_defer_ms=60_000)
    writer.record(ev(1))
    assert writer.flush(timeout=5)  # well before the batch's 60 s of waiting for a gap
    writer.record(ev(2))
    assert writer.close(timeout=5) == []
    assert rec.ids == [1, 2]


def test_activity_counts_work_in_flight() -> None:
    activity = Activity()
    assert activity.wait_idle(0) and activity.busy == 0
    activity.enter()
    activity.enter()
    assert not activity.wait_idle(0.01) and activity.busy == 2
    activity.leave()
    assert not activity.wait_idle(0) and activity.busy == 1
    threading.Timer(0.05, activity.leave).start()
    assert activity.wait_idle(5) and activity.busy == 0


def test_list_sink_records() -> None:
    sink = ListAuditSink()
    sink.record(ev(1))
    assert sink.events == [ev(1)]
