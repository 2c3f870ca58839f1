"""Remember which events a consumer has handled, so redeliveries are recognised.

A high-water mark is not enough: with several relays or XAUTOCLAIM an older seq can arrive
after a newer one, and must still be handled. A bounded set of recent seqs is.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class RecentSeqs:
    def __init__(self, capacity: int = 100_000) -> None:
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, seq: object) -> bool:
        return seq in self._seen

    def add(self, seq: Hashable) -> None:
        self._seen[seq] = None
        self._seen.move_to_end(seq)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
