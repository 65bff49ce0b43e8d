"""When to try an upstream again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time

# Worth retrying on the same provider: rate limits, overload, transient server errors.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504, 529})
# Not worth retrying there, but another provider may well answer: its key, its model.
FAILOVER_STATUS = RETRYABLE_STATUS | {401, 403, 404}


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 5.0
    # A Retry-After longer than this sends the request to the next candidate instead.
    max_wait_s: float = 10.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait before retry number `attempt` (1-based), or None to give up."""
        hinted = parse_retry_after(retry_after) if retry_after else None
        if hinted is not None:
            return hinted if hinted <= self.max_wait_s else None
        # Full jitter (AWS architecture blog): spreads retries of many clients apart.
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


def parse_retry_after(value: str) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError, IndexError):
        return None
