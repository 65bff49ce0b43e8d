"""Token buckets behind `ratelimits`: the protocol every backend speaks, and the in-process one.

GCRA (the generic cell rate algorithm) keeps one number per bucket, its theoretical arrival
time (TAT): the instant the bucket would be full again. `limit` tokens per `period_s` give an
emission interval T = period_s / limit; the burst is the whole limit, so a take of `cost` is
allowed while the new TAT stays within one period of now. One float per key, no timers: the
same arithmetic runs in Redis as one Lua script (RedisBuckets), so both backends agree.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Take:
    """What a take (or a look at a bucket) found: the headers of the answer come from it."""

    allowed: bool
    remaining: int  # tokens left after this take (0 when in debt)
    limit: int
    retry_after_s: float  # 0 when allowed; else when this cost would fit
    reset_s: float  # until the bucket is full again


class Buckets(Protocol):
    """A store of GCRA buckets keyed by name. Implementations are atomic per call."""

    async def take(self, key: str, cost: int, limit: int, period_s: float) -> Take:
        """Take `cost` tokens if they fit (burst = limit); denied takes nothing."""
        ...

    async def debit(self, key: str, cost: int, limit: int, period_s: float) -> None:
        """Take `cost` tokens whatever is left: output tokens at an answer's end may push
        the bucket into debt, which later takes wait out."""
        ...

    async def refund(self, key: str, cost: int, limit: int, period_s: float) -> None:
        """Give back `cost` tokens an allowed take took, when the request it was for is
        refused by another budget: never past a full bucket."""
        ...


# Float rounding of (now + cost * interval - period) must not refuse a take that exactly
# fills the bucket; a microsecond is far below any interval a limit can configure.
EPSILON_S = 1e-6


@dataclass(frozen=True, slots=True)
class Gcra:
    """The arithmetic, shared by MemoryBuckets and the tests of any backend."""

    limit: int
    period_s: float

    @property
    def interval(self) -> float:
        return self.period_s / self.limit

    def take(self, tat: float, now: float, cost: int) -> tuple[Take, float | None]:
        """(the result, the new TAT to store or None when denied)."""
        interval = self.interval
        base = max(tat, now)
        new_tat = base + cost * interval
        allow_at = new_tat - self.period_s
        if cost > self.limit or allow_at - now > EPSILON_S:
            # A cost above the limit never fits; say when the bucket is full, the most
            # a client can wait for.
            retry = (base - now) if cost > self.limit else allow_at - now
            return self.result(False, tat, now, retry_after_s=max(retry, 0.0)), None
        return self.result(True, new_tat, now), new_tat

    def result(self, allowed: bool, tat: float, now: float, retry_after_s: float = 0.0) -> Take:
        ahead = max(tat - now, 0.0)
        remaining = math.floor((self.period_s - ahead) / self.interval + 1e-9)
        return Take(
            allowed=allowed,
            remaining=max(0, min(self.limit, remaining)),
            limit=self.limit,
            retry_after_s=retry_after_s,
            reset_s=ahead,
        )


# Keys kept at most by one process. A bucket whose TAT has passed is full, the same as an
# absent one, so evicting the least recently used loses nothing but, past the cap, debt.
DEFAULT_MAX_KEYS = 100_000


class MemoryBuckets:
    """Buckets in this process's memory: one event loop makes each call atomic (no await
    inside), and an LRU cap bounds the keys a stream of distinct header values can add."""

    def __init__(
        self, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._tats: OrderedDict[str, float] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def __len__(self) -> int:
        return len(self._tats)

    async def take(self, key: str, cost: int, limit: int, period_s: float) -> Take:
        now = self._clock()
        result, new_tat = Gcra(limit, period_s).take(self._tats.get(key, now), now, cost)
        if new_tat is not None:
            self._store(key, new_tat, now)
        return result

    async def debit(self, key: str, cost: int, limit: int, period_s: float) -> None:
        now = self._clock()
        tat = max(self._tats.get(key, now), now)
        self._store(key, tat + cost * Gcra(limit, period_s).interval, now)

    async def refund(self, key: str, cost: int, limit: int, period_s: float) -> None:
        tat = self._tats.get(key)
        if tat is None:
            return  # evicted or never taken: full already
        now = self._clock()
        tat -= cost * Gcra(limit, period_s).interval
        if tat <= now:
            del self._tats[key]  # full again, the same as absent
        else:
            self._tats[key] = tat

    def _store(self, key: str, tat: float, now: float) -> None:
        self._tats[key] = tat
        self._tats.move_to_end(key)
        while len(self._tats) > self._max_keys:
            self._tats.popitem(last=False)
