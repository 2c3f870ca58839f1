"""The group-commit writer on its own: batches in submission order, failures, closing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from gateway.intake.group_commit import GroupCommitter


class Recorder:
    """An apply_batch that records each batch; the first batch waits until `release` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[str]) -> list[str | BaseException]:
        self.started.set()
        assert self.release.wait(10)
        self.batches.append(list(items))
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


def test_inputs_waiting_while_the_writer_is_busy_form_the_next_batch_in_order() -> None:
    apply = Recorder()
    committer = GroupCommitter(apply, max_batch=3, max_wait=0)
    first = committer.submit("a")
    assert apply.started.wait(10)
    rest = [committer.submit(item) for item in ("b", "c", "d", "e")]
    apply.release.set()
    assert [f.result(10) for f in (first, *rest)] == ["A", "B", "C", "D", "E"]
    committer.close()
    assert apply.batches == [["a"], ["b", "c", "d"], ["e"]]  # at most max_batch at a time
    assert (committer.batches, committer.applied) == (3, 5)


def test_an_input_that_fails_alone_fails_only_its_own_future() -> None:
    apply = Recorder()
    apply.release.set()
    committer = GroupCommitter(apply)
    good, bad = committer.submit("good"), committer.submit("bad one")
    assert good.result(10) == "GOOD"
    with pytest.raises(ValueError, match="bad one"):
        bad.result(10)
    committer.close()


def test_a_batch_that_raises_fails_every_input_of_it_and_the_writer_goes_on() -> None:
    calls: list[list[str]] = []

    def apply(items: Sequence[str]) -> list[str | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            raise RuntimeError("database unavailable")
        return [item.upper() for item in items]

    committer = GroupCommitter(apply)
    with pytest.raises(RuntimeError, match="database unavailable"):
        committer.submit("x").result(10)
    assert committer.submit("y").result(10) == "Y"
    committer.close()


def test_close_applies_what_is_queued_then_refuses_more() -> None:
    apply = Recorder()
    committer = GroupCommitter(apply, max_wait=0)
    futures = [committer.submit(item) for item in ("a", "b")]
    apply.release.set()
    committer.close()
    assert [f.result(0) for f in futures] == ["A", "B"]
    with pytest.raises(RuntimeError, match="closed"):
        committer.submit("c")


def test_asyncio_callers_of_one_batch_are_answered_together_and_a_cancelled_one_is_not_applied() -> None:
    apply = Recorder()
    committer = GroupCommitter(apply, max_batch=8, max_wait=0)

    async def run() -> list[object]:
        first = asyncio.ensure_future(committer.apply("a"))
        while not apply.started.is_set():
            await asyncio.sleep(0.001)
        waiting = [asyncio.ensure_future(committer.apply(item)) for item in ("b", "bad c", "gone", "d")]
        await asyncio.sleep(0)  # the four are queued behind the first batch
        waiting[2].cancel()
        await asyncio.sleep(0)
        apply.release.set()
        return await asyncio.gather(first, *waiting, return_exceptions=True)

    a, b, bad, gone, d = asyncio.run(run())
    committer.close()
    assert (a, b, d) == ("A", "B", "D")
    assert isinstance(bad, ValueError)
    assert isinstance(gone, asyncio.CancelledError)
    assert apply.batches == [["a"], ["b", "bad c", "d"]]  # the cancelled input never reached the writer
