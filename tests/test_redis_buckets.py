"""RedisBuckets against a real redis-server: one budget for every client, what Redis
holds, and a Redis killed mid-run and restarted under both failure modes."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading

import pytest

from proxy.config.model import OnUnavailable, Secret, SharedStateSettings
from proxy.limits.redis_buckets import KEY_PREFIX, RedisBuckets
from proxy.state.errors import StoreUnavailable
from proxy.state.shared import SharedState

HOUR = 3600.0
# Only a guard against a hang: every operation is bounded by a 100 ms timeout.
HANG_S = 10.0


def shared_for(url: str, mode: OnUnavailable = OnUnavailable.FAIL_OPEN, **kw) -> SharedState:
    settings = SharedStateSettings(url=Secret(url), timeout_s=0.1, on_unavailable=mode)
    return SharedState(settings, **kw)


class Recorded:
    """A StoreMetrics that remembers what it was told."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.up: list[bool] = []

    def store_error(self, store: str, op: str) -> None:
        self.errors.append((store, op))

    def store_up(self, store: str, up: bool) -> None:
        self.up.append(up)


# --- one budget ------------------------------------------------------------------------------


def _hammer(url: str, key: str, takes: int, cost: int, limit: int) -> list[bool | None]:
    """One client (its own event loop and connection pool) taking concurrently: each take
    allowed, denied, or None when it got no answer in time (fail_closed: a stalled machine
    cannot turn a take into an allowance the budget never gave)."""

    async def run() -> list[bool | None]:
        settings = SharedStateSettings(
            url=Secret(url), timeout_s=5.0, on_unavailable=OnUnavailable.FAIL_CLOSED
        )
        shared = SharedState(settings)
        await shared.open()
        buckets = RedisBuckets(shared)
        try:
            results = await asyncio.gather(
                *(buckets.take(key, cost, limit, HOUR) for _ in range(takes)),
                return_exceptions=True,
            )
        finally:
            await shared.close()
        return [None if isinstance(r, StoreUnavailable) else r.allowed for r in results]

    return asyncio.run(run())


@pytest.mark.parametrize("cost", [1, 3])
def test_two_clients_hammering_one_key_never_exceed_the_budget(redis_server, cost):
    limit, key = 100, f"shared-{cost}"
    results: dict[int, list[bool | None]] = {}

    def client(n: int) -> None:
        results[n] = _hammer(redis_server.url, key, 150, cost, limit)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    outcomes = results[0] + results[1]
    allowed = outcomes.count(True)
    assert allowed <= limit // cost  # never one more
    if None not in outcomes:
        assert allowed == limit // cost  # and, when every take was answered, none lost
    # Both clients took from the one budget until it was empty for them too.
    assert results[0].count(False) > 0
    assert results[1].count(False) > 0


async def test_a_bucket_is_one_key_that_expires_when_full_again(redis_server):
    shared = shared_for(redis_server.url)
    await shared.open()
    buckets = RedisBuckets(shared)
    await buckets.take("team-blue", 5, 10, 60.0)
    assert redis_server.command("EXISTS", KEY_PREFIX + "team-blue") == b":1\r\n"
    ttl_ms = int(redis_server.command("PTTL", KEY_PREFIX + "team-blue")[1:-2])
    assert 29_000 < ttl_ms <= 30_001  # half the budget used: full again in half a period
    await shared.close()


async def test_scripts_are_loaded_again_after_redis_forgets_them(redis_server):
    shared = shared_for(redis_server.url)
    await shared.open()
    buckets = RedisBuckets(shared)
    assert (await buckets.take("k", 1, 10, HOUR)).remaining == 9
    assert redis_server.command("SCRIPT", "FLUSH") == b"+OK\r\n"
    assert (await buckets.take("k", 1, 10, HOUR)).remaining == 8  # NOSCRIPT, loaded, run
    await shared.close()


# --- Redis killed mid-run, then restarted ----------------------------------------------------


async def _until_up(shared: SharedState, op) -> object:
    """Operations until the store serves one again (the breaker lets one through each
    window); the last result."""
    for _ in range(200):
        result = await asyncio.wait_for(op(), HANG_S)
        if shared.up:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError("the store did not come back")


async def test_fail_open_serves_while_redis_is_down_and_recovers_by_itself(redis_server):
    metrics = Recorded()
    shared = shared_for(redis_server.url, metrics=metrics, breaker_s=0.05)
    await shared.open()
    buckets = RedisBuckets(shared)
    assert (await buckets.take("k", 4, 10, HOUR)).remaining == 6

    redis_server.kill()
    down = await asyncio.wait_for(buckets.take("k", 4, 10, HOUR), HANG_S)
    assert down.allowed  # fail_open: the request goes on without a limit
    assert shared.up is False
    skipped = await asyncio.wait_for(buckets.take("k", 4, 10, HOUR), HANG_S)
    assert skipped.allowed  # the breaker skips the dead store: no wait at all
    await asyncio.wait_for(buckets.debit("k", 4, 10, HOUR), HANG_S)  # no error either
    assert ("redis", "ratelimit_take") in metrics.errors
    assert ("redis", "ratelimit_debit") in metrics.errors
    assert metrics.up == [True, False]

    redis_server.restart()  # empty: nothing was persisted
    back = await _until_up(shared, lambda: buckets.take("k", 4, 10, HOUR))
    assert back.remaining == 6  # counted in Redis again
    assert (await buckets.take("k", 4, 10, HOUR)).remaining == 2
    assert metrics.up == [True, False, True]
    await shared.close()


async def test_fail_closed_answers_unavailable_while_down_and_recovers(redis_server):
    shared = shared_for(redis_server.url, OnUnavailable.FAIL_CLOSED, breaker_s=0.05)
    await shared.open()
    buckets = RedisBuckets(shared)
    assert (await buckets.take("k", 4, 10, HOUR)).allowed

    redis_server.kill()
    for _ in range(2):  # the failing call, then one the breaker skips
        with pytest.raises(StoreUnavailable) as caught:
            await asyncio.wait_for(buckets.take("k", 1, 10, HOUR), HANG_S)
        assert caught.value.status == 503
        assert caught.value.retry_after == "1"

    redis_server.restart()

    async def take_or_none():
        try:
            return await buckets.take("k", 1, 10, HOUR)
        except StoreUnavailable:
            return None

    back = await _until_up(shared, take_or_none)
    assert back is not None
    assert back.remaining == 9
    await shared.close()


async def test_redis_down_at_start_up_is_served_without_it_until_it_comes(redis_server):
    redis_server.kill()
    shared = shared_for(redis_server.url, breaker_s=0.05)
    await shared.open()  # does not fail: fail_open serves meanwhile
    assert shared.up is False
    buckets = RedisBuckets(shared)
    assert (await buckets.take("k", 10, 10, HOUR)).allowed
    redis_server.start()
    back = await _until_up(shared, lambda: buckets.take("k", 3, 10, HOUR))
    assert back.remaining == 7
    await shared.close()


# --- what the log says -----------------------------------------------------------------------


async def test_failures_are_logged_loudly_once_per_window_and_never_show_the_password(
    redis_server, caplog
):
    # A password the server does not take: every operation fails with an AUTH error.
    assert redis_server.command("CONFIG", "SET", "requirepass", "the-real-one") == b"+OK\r\n"
    url = redis_server.url.replace("redis://", "redis://:hunter2-s3cret@")
    shared = shared_for(url, OnUnavailable.FAIL_CLOSED, breaker_s=0.0)
    caplog.set_level(logging.WARNING, logger="plano.state")
    await shared.open()
    buckets = RedisBuckets(shared)
    for _ in range(5):
        with pytest.raises(StoreUnavailable) as caught:
            await buckets.take("k", 1, 10, HOUR)
        assert "hunter2" not in caught.value.message
    lines = [r.getMessage() for r in caplog.records if r.name == "plano.state"]
    takes = [line for line in lines if "ratelimit_take" in line]
    assert len(takes) == 1  # five failures, one line until LOG_EVERY_S has passed
    assert "answering 503 (fail_closed)" in takes[0]
    assert "127.0.0.1" in takes[0]
    assert all("hunter2" not in line for line in lines)
    assert shared.errors["ratelimit_take"] == 5
    await shared.close()


# --- a store that stops answering ------------------------------------------------------------


async def test_a_hung_store_is_marked_down_after_timeouts_in_a_row(redis_server):
    shared = shared_for(redis_server.url, breaker_s=0.05)
    await shared.open()
    buckets = RedisBuckets(shared)
    assert (await buckets.take("k", 1, 10, HOUR)).remaining == 9
    redis_server.process.send_signal(signal.SIGSTOP)  # hung: connections open, no replies
    try:
        for _ in range(2):
            assert (await asyncio.wait_for(buckets.take("k", 1, 10, HOUR), HANG_S)).allowed
            # A lone timeout may be this process stalling, not the store: still up.
            assert shared.up is True
        await asyncio.wait_for(buckets.take("k", 1, 10, HOUR), HANG_S)
        assert shared.up is False  # the third in a row
        assert shared.errors == {"ratelimit_take": 3}
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    back = await _until_up(shared, lambda: buckets.take("k", 1, 10, HOUR))
    # The takes that timed out were sent: the store, once it runs again, may still count
    # them (counting a request that was not limited errs on the safe side).
    assert 5 <= back.remaining <= 8
    await shared.close()


async def test_a_store_that_never_answered_is_down_from_the_first_timeout():
    with socket.socket() as silent:  # the kernel accepts connections; nothing replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        shared = shared_for(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        await asyncio.wait_for(shared.open(), HANG_S)
        assert shared.up is False
        assert (await asyncio.wait_for(RedisBuckets(shared).take("k", 1, 9, HOUR), 1)).allowed
        assert shared.errors == {"ping": 1, "ratelimit_take": 1}  # skipped: no wait
        await shared.close()


@pytest.mark.parametrize(
    ("cost", "limit"),
    [(10**18, 1000), (10, 10**20)],
    ids=["a debt past 2^63 microseconds", "a limit past 2^63 tokens"],
)
async def test_huge_numbers_neither_overflow_nor_mark_the_store_down(redis_server, cost, limit):
    """An upstream's usage past any sense (a debit of 10^18 tokens) or a huge budget must
    not overflow the script's integer replies or its PX: an error there marked the store
    down, so every budget went unenforced for a second, and read back negative numbers."""
    shared = shared_for(redis_server.url)
    await shared.open()
    buckets = RedisBuckets(shared)
    await buckets.debit("huge", cost, limit, HOUR)
    take = await buckets.take("huge", 1, limit, HOUR)
    assert shared.up is True
    assert shared.errors == {}
    assert take.remaining >= 0
    assert take.retry_after_s >= 0
    assert take.reset_s >= 0
    if cost > limit:  # in debt for (as good as) ever
        assert not take.allowed
        assert take.retry_after_s > 100 * 365 * 86400
    else:
        assert take.allowed
        assert take.remaining > 10**15
    await shared.close()
