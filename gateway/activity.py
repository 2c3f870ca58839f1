"""Foreground work in flight, so that background writers can use the gaps between requests.

A gateway is one process, and Python runs one thread at a time: a batch of AuditEvents stored
while a request is being served takes its turns on the interpreter lock, and that request waits
for them. It shows at the tail (a request that lands on a write is a few ms slower), not in the
mean. Background work that can wait a little asks `wait_idle` before it starts.
"""

from __future__ import annotations

import threading


class Activity:
    """A count of requests being served; `wait_idle` returns when it is zero."""

    def __init__(self) -> None:
        self._busy = 0
        self._changed = threading.Condition()

    @property
    def busy(self) -> int:
        return self._busy

    def enter(self) -> None:
        with self._changed:
            self._busy += 1

    def leave(self) -> None:
        with self._changed:
            self._busy -= 1
            if not self._busy:
                self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is in flight, False if `timeout` seconds pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._busy, timeout)
