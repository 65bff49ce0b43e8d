"""The budget buckets rate limits draw from: the protocol every backend implements.

(A copy of the shared plan's protocol so the Redis backend can be built against it; the
limits work owns this module and its in-memory backend.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Take:
    allowed: bool
    remaining: int  # tokens left in the bucket after this take (0 when in debt)
    limit: int
    retry_after_s: float  # 0 when allowed; else how long until `cost` would be allowed
    reset_s: float  # how long until the bucket is full again


class Buckets(Protocol):
    async def take(self, key: str, cost: int, limit: int, period_s: float) -> Take:
        """GCRA: `limit` tokens per `period_s`, burst = limit; a cost above what remains
        is denied and nothing is taken."""
        ...

    async def debit(self, key: str, cost: int, limit: int, period_s: float) -> None:
        """Always taken (output tokens at the end of an answer): may push the bucket into
        debt, which later takes wait out."""
        ...
