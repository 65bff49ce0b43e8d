"""The same cases on every Buckets backend: what a rate limit means must not depend on
where its buckets live.

A backend joins by adding a param to BACKENDS (a factory taking the test's request and
returning a Buckets). Every case runs on the real clock, the only one Redis has: budgets
that must not refill during a case use an hour-long period, those that must refill wait
a fraction of a second.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.model import Secret, SharedStateSettings
from proxy.limits.buckets import Buckets
from proxy.limits.redis_buckets import RedisBuckets
from proxy.state.shared import SharedState

HOUR = 3600.0
_keys = itertools.count()


def fresh_key() -> str:
    """Each case (and each hypothesis example) draws from a bucket no one used."""
    return f"conformance-{next(_keys)}"


async def _redis(request: pytest.FixtureRequest) -> tuple[Buckets, Callable[[], Awaitable]]:
    server = request.getfixturevalue("redis_server")
    shared = SharedState(SharedStateSettings(url=Secret(server.url), timeout_s=2.0))
    await shared.open()
    return RedisBuckets(shared), shared.close


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Awaitable[tuple[Buckets, Callable]]]] = {
    "redis": _redis,
}


@pytest.fixture(params=sorted(BACKENDS))
async def buckets(request: pytest.FixtureRequest) -> AsyncIterator[Buckets]:
    backend, close = await BACKENDS[request.param](request)
    yield backend
    await close()


async def test_a_fresh_bucket_allows_its_whole_limit_at_once(buckets):
    key = fresh_key()
    take = await buckets.take(key, 10, 10, HOUR)
    assert take.allowed
    assert take.limit == 10
    assert take.remaining == 0
    assert take.retry_after_s == 0
    assert take.reset_s == pytest.approx(HOUR, abs=1)
    assert not (await buckets.take(key, 1, 10, HOUR)).allowed


async def test_remaining_counts_down_take_by_take(buckets):
    key = fresh_key()
    remaining = [(await buckets.take(key, cost, 100, HOUR)).remaining for cost in (1, 9, 40)]
    assert remaining == [99, 90, 50]


async def test_a_take_above_what_remains_is_denied_and_takes_nothing(buckets):
    key = fresh_key()
    await buckets.take(key, 7, 10, HOUR)
    denied = await buckets.take(key, 4, 10, HOUR)
    assert not denied.allowed
    assert denied.remaining == 3
    # One token comes back every period/limit: 4 need one more, 360 s from now.
    assert denied.retry_after_s == pytest.approx(HOUR / 10, abs=1)
    assert denied.reset_s == pytest.approx(HOUR * 7 / 10, abs=1)
    fits = await buckets.take(key, 3, 10, HOUR)  # nothing was taken by the denial
    assert fits.allowed
    assert fits.remaining == 0


async def test_a_cost_above_the_limit_is_never_allowed(buckets):
    key = fresh_key()
    assert not (await buckets.take(key, 11, 10, HOUR)).allowed
    assert (await buckets.take(key, 10, 10, HOUR)).allowed  # and it took nothing


async def test_tokens_come_back_one_interval_at_a_time(buckets):
    key = fresh_key()
    period = 1.0  # 10 tokens a second: one every 100 ms
    await buckets.take(key, 10, 10, period)
    denied = await buckets.take(key, 3, 10, period)
    assert not denied.allowed
    assert 0.2 < denied.retry_after_s <= 0.3
    await asyncio.sleep(denied.retry_after_s + 0.02)
    assert (await buckets.take(key, 3, 10, period)).allowed


async def test_a_debit_is_always_taken_and_can_leave_a_debt(buckets):
    key = fresh_key()
    await buckets.take(key, 8, 10, HOUR)
    await buckets.debit(key, 7, 10, HOUR)  # 5 more than remained
    take = await buckets.take(key, 1, 10, HOUR)
    assert not take.allowed
    assert take.remaining == 0
    # The debt of 5 and the token asked for: 6 intervals.
    assert take.retry_after_s == pytest.approx(HOUR * 6 / 10, abs=1)
    assert take.reset_s == pytest.approx(HOUR * 15 / 10, abs=1)


async def test_a_debit_on_a_fresh_bucket_uses_its_budget(buckets):
    key = fresh_key()
    await buckets.debit(key, 4, 10, HOUR)
    assert (await buckets.take(key, 0, 10, HOUR)).remaining == 6


async def test_a_refund_gives_back_what_a_take_took_never_past_full(buckets):
    key = fresh_key()
    assert (await buckets.take(key, 60, 100, HOUR)).allowed
    await buckets.refund(key, 60, 100, HOUR)
    assert (await buckets.take(key, 100, 100, HOUR)).remaining == 0
    await buckets.refund(key, 100, 100, HOUR)
    await buckets.refund(key, 50, 100, HOUR)  # more than was taken: it stays full
    assert (await buckets.take(key, 100, 100, HOUR)).allowed
    assert not (await buckets.take(key, 1, 100, HOUR)).allowed
    in_debt = fresh_key()
    await buckets.debit(in_debt, 150, 100, HOUR)
    await buckets.refund(in_debt, 30, 100, HOUR)  # 120 used: still in debt
    denied = await buckets.take(in_debt, 1, 100, HOUR)
    assert not denied.allowed
    assert denied.reset_s == pytest.approx(HOUR * 120 / 100, abs=1)


async def test_keys_are_separate_budgets(buckets):
    first, second = fresh_key(), fresh_key()
    assert (await buckets.take(first, 10, 10, HOUR)).allowed
    assert (await buckets.take(second, 10, 10, HOUR)).allowed
    assert not (await buckets.take(first, 1, 10, HOUR)).allowed


async def test_a_limit_that_does_not_divide_the_period_still_allows_exactly_the_limit(buckets):
    key = fresh_key()
    assert (await buckets.take(key, 7, 7, 60.0)).allowed  # 8.571428... s a token
    key = fresh_key()
    results = [(await buckets.take(key, 1, 7, HOUR)).allowed for _ in range(8)]
    assert results == [True] * 7 + [False]


# The fixture's bucket is shared by the examples, each of which takes a fresh key.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(costs=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=12))
async def test_takes_are_allowed_exactly_while_they_fit(buckets, costs):
    """Within one period: a take is allowed iff it fits in what remains, and what remains
    is the limit less what was allowed."""
    key, limit, spent = fresh_key(), 20, 0
    for cost in costs:
        take = await buckets.take(key, cost, limit, HOUR)
        assert take.allowed == (spent + cost <= limit)
        if take.allowed:
            spent += cost
        assert take.remaining == limit - spent
