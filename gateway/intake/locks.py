"""Per-key locks, so that messages for one patient are applied one at a time, in arrival order.

Locks are held in a weak dictionary: a key nobody holds or waits on costs nothing.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager


class _KeyLock:
    """A lock that can be weakly referenced (a bare `threading.Lock` cannot)."""

    __slots__ = ("__weakref__", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()


class KeyedLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: weakref.WeakValueDictionary[str, _KeyLock] = weakref.WeakValueDictionary()

    def _get(self, key: str) -> _KeyLock:
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = _KeyLock()
                self._locks[key] = entry
            return entry

    @contextmanager
    def hold(self, keys: Iterable[str]) -> Iterator[None]:
        """Hold every key's lock; taken in sorted order so two holders can never deadlock."""
        entries = [self._get(k) for k in sorted(set(keys))]
        with ExitStack() as stack:
            for entry in entries:
                stack.enter_context(entry.lock)
            yield
