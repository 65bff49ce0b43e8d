"""X-Model-Affinity: a session keeps the route it first got, for a while."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

AFFINITY_HEADER = "X-Model-Affinity"
T = TypeVar("T")


class AffinityStore(Generic[T]):
    """Session id to pinned value, expiring after ttl, evicting the oldest beyond a cap."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def get(self, session: str) -> T | None:
        entry = self._entries.get(session)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[session]
            return None
        return value

    def pin(self, session: str, value: T) -> None:
        self._entries[session] = (self._clock() + self.ttl_s, value)
        self._entries.move_to_end(session)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class DecisionCache(Generic[T]):
    """A plain LRU: decisions for conversation tails seen recently."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[object, T] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: object) -> T | None:
        if self.max_entries == 0:
            return None
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: object, value: T) -> None:
        if self.max_entries == 0:
            return
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
