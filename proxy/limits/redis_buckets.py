"""Rate-limit buckets in Redis: every instance of a deployment draws from one budget.

GCRA (the generic cell rate algorithm): a bucket is one number, its theoretical arrival
time (TAT), the moment at which it would be full again. `limit` tokens per `period`
refill one every `period / limit`; a take of `cost` moves the TAT `cost` intervals on,
and is allowed while the TAT stays within one period of now (burst = limit).

Each operation is one Lua script, so it is atomic (no other client runs between its read
and its write) and one round trip. The script reads the clock with Redis's TIME, not the
caller's: instances whose clocks disagree still agree on every bucket. Scripts are sent
by their SHA (EVALSHA) and loaded when Redis does not know them (NOSCRIPT: after a restart
too), by redis-py's Script. Keys are `plano:ratelimit:<key>`, expiring when the bucket is
full again (at most one period after a take; a debt lasts longer).

Times travel as integer microseconds since EPOCH_S: Lua numbers are doubles, exact for
whole microseconds up to 2^53 (285 years past the epoch), and fine enough for a fraction
of one; seconds since 1970 in microseconds would leave a TAT only 1/4 µs of precision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.limits.buckets import Take
from proxy.state.shared import SharedState

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

KEY_PREFIX = "plano:ratelimit:"
EPOCH_S = 1_700_000_000

# Shared by both scripts: the clock, the interval, and how full the bucket is now. A
# thousandth of a token of tolerance absorbs the rounding of `limit * interval`, so a
# full bucket always allows exactly `limit`.
_PRELUDE = f"""
local cost, limit, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = (tonumber(clock[1]) - {EPOCH_S}) * 1000000 + tonumber(clock[2])
local interval = period / limit
local tolerance = interval / 1000
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
-- Integer replies and PX are 64-bit: a debt (an upstream's usage past any sense) or a
-- budget is held at 2^53 (285 years of microseconds), where doubles are still exact.
local most = 9007199254740992
local function ahead(fill)
  return math.min(fill, most)
end
local function remaining(fill)
  local left = math.floor((period - fill + tolerance) / interval)
  if left < 0 then return 0 end
  return math.min(left, most)
end
local function store(fill)
  redis.call('SET', KEYS[1], string.format('%.17g', now + fill),
             'PX', math.ceil(fill / 1000) + 1)
end
"""

# -> {allowed (0/1), remaining, retry after (µs), reset (µs)}
TAKE_SCRIPT = (
    _PRELUDE
    + """
local after = ahead(tat - now + cost * interval)
if after <= period + tolerance then
  store(after)
  return {1, remaining(after), 0, math.ceil(after)}
end
return {0, remaining(tat - now), math.ceil(after - period), math.ceil(tat - now)}
"""
)

# -> how far from full the bucket is now (µs); past one period it is in debt.
DEBIT_SCRIPT = (
    _PRELUDE
    + """
local after = ahead(tat - now + cost * interval)
store(after)
return math.ceil(after)
"""
)

# -> how far from full the bucket is now (µs), after giving back `cost` a take took; a
# bucket given back to full is deleted (absent is full).
REFUND_SCRIPT = (
    _PRELUDE
    + """
local after = tat - now - cost * interval
if after <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
store(after)
return math.ceil(after)
"""
)


class RedisBuckets:
    """The Buckets protocol on the shared store; its failures follow `on_unavailable`
    (fail_open: the take is allowed; fail_closed: StoreUnavailable, a 503)."""

    def __init__(self, shared: SharedState):
        self.shared = shared
        self._take: AsyncScript | None = None
        self._debit: AsyncScript | None = None
        self._refund: AsyncScript | None = None

    def _scripts(self) -> tuple[AsyncScript, AsyncScript, AsyncScript]:
        if self._take is None or self._debit is None or self._refund is None:
            # Only hashes the scripts: nothing is sent until the first call.
            client = self.shared.client
            self._take = client.register_script(TAKE_SCRIPT)
            self._debit = client.register_script(DEBIT_SCRIPT)
            self._refund = client.register_script(REFUND_SCRIPT)
        return self._take, self._debit, self._refund

    async def take(self, key: str, cost: int, limit: int, period_s: float) -> Take:
        args = _args(cost, limit, period_s)
        script = self._scripts()[0]
        reply = await self.shared.run(
            "ratelimit_take",
            lambda client: script(keys=[KEY_PREFIX + key], args=args, client=client),
            None,
        )
        if reply is None:  # fail_open: the store did not answer, the request goes on
            return Take(True, limit, limit, 0.0, 0.0)
        allowed, remaining, retry_us, reset_us = reply
        return Take(bool(allowed), int(remaining), limit, retry_us / 1e6, reset_us / 1e6)

    async def debit(self, key: str, cost: int, limit: int, period_s: float) -> None:
        args = _args(cost, limit, period_s)
        script = self._scripts()[1]
        await self.shared.run(
            "ratelimit_debit",
            lambda client: script(keys=[KEY_PREFIX + key], args=args, client=client),
            None,
        )

    async def refund(self, key: str, cost: int, limit: int, period_s: float) -> None:
        args = _args(cost, limit, period_s)
        script = self._scripts()[2]
        await self.shared.run(
            "ratelimit_refund",
            lambda client: script(keys=[KEY_PREFIX + key], args=args, client=client),
            None,
        )


def _args(cost: int, limit: int, period_s: float) -> tuple[int, int, int]:
    if limit <= 0 or period_s <= 0 or cost < 0:
        raise ValueError(f"a bucket needs limit > 0, period > 0, cost >= 0: {limit=}")
    return cost, limit, round(period_s * 1_000_000)
