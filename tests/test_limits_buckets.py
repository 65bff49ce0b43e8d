"""GCRA buckets: the cases every backend must pass (conformance), and MemoryBuckets' bounds.

`conformance_backends` lists the backends the shared cases run on; a backend that needs a
server (RedisBuckets) adds itself there. The cases run on the real clock with periods of an
hour, so the few milliseconds between calls cannot move a result.
"""

from __future__ import annotations

import pytest

from proxy.limits.buckets import Buckets, Gcra, MemoryBuckets

HOUR = 3600.0


@pytest.fixture(params=["memory"])
def buckets(request) -> Buckets:
    if request.param == "memory":
        return MemoryBuckets()
    raise AssertionError(request.param)


async def test_take_within_burst_then_denied(buckets: Buckets):
    first = await buckets.take("k", 60, 100, HOUR)
    assert first.allowed
    assert first.remaining == 40
    assert first.limit == 100
    assert first.retry_after_s == 0
    assert first.reset_s == pytest.approx(60 * HOUR / 100, rel=1e-3)
    second = await buckets.take("k", 50, 100, HOUR)
    assert not second.allowed
    # 10 more tokens must drip back: 10 intervals of 36 s.
    assert second.retry_after_s == pytest.approx(10 * HOUR / 100, rel=1e-3)
    assert second.remaining == 40
    # A denied take took nothing: 40 still fit.
    third = await buckets.take("k", 40, 100, HOUR)
    assert third.allowed
    assert third.remaining == 0


async def test_keys_are_independent(buckets: Buckets):
    assert (await buckets.take("a", 100, 100, HOUR)).allowed
    assert not (await buckets.take("a", 1, 100, HOUR)).allowed
    assert (await buckets.take("b", 100, 100, HOUR)).allowed


async def test_cost_above_limit_never_fits(buckets: Buckets):
    result = await buckets.take("k", 101, 100, HOUR)
    assert not result.allowed
    assert result.remaining == 100
    # Nothing was taken by the refusal.
    assert (await buckets.take("k", 100, 100, HOUR)).allowed


async def test_debit_pushes_into_debt(buckets: Buckets):
    assert (await buckets.take("k", 30, 100, HOUR)).allowed
    await buckets.debit("k", 120, 100, HOUR)  # 150 used of 100: 50 in debt
    denied = await buckets.take("k", 1, 100, HOUR)
    assert not denied.allowed
    assert denied.remaining == 0
    # The debt (50) and the cost (1) must drip back before it fits.
    assert denied.retry_after_s == pytest.approx(51 * HOUR / 100, rel=1e-3)
    assert denied.reset_s == pytest.approx(150 * HOUR / 100, rel=1e-3)


async def test_debit_on_a_fresh_key(buckets: Buckets):
    await buckets.debit("fresh", 25, 100, HOUR)
    assert (await buckets.take("fresh", 75, 100, HOUR)).allowed
    assert not (await buckets.take("fresh", 1, 100, HOUR)).allowed


async def test_a_refund_gives_back_a_take_but_never_past_full(buckets: Buckets):
    """What admission gives back when another budget refuses the request (all or nothing)."""
    assert (await buckets.take("k", 60, 100, HOUR)).allowed
    await buckets.refund("k", 60, 100, HOUR)
    assert (await buckets.take("k", 100, 100, HOUR)).allowed
    await buckets.refund("k", 100, 100, HOUR)
    await buckets.refund("k", 50, 100, HOUR)  # more than was taken: the bucket stays full
    assert (await buckets.take("k", 100, 100, HOUR)).allowed
    assert not (await buckets.take("k", 1, 100, HOUR)).allowed
    await buckets.refund("never-taken", 10, 100, HOUR)
    assert (await buckets.take("never-taken", 100, 100, HOUR)).remaining == 0


async def test_a_refund_in_debt_gives_back_only_what_it_names(buckets: Buckets):
    await buckets.take("k", 30, 100, HOUR)
    await buckets.debit("k", 120, 100, HOUR)  # 150 used: 50 in debt
    await buckets.refund("k", 30, 100, HOUR)  # 120 used: still 20 in debt
    denied = await buckets.take("k", 1, 100, HOUR)
    assert not denied.allowed
    assert denied.reset_s == pytest.approx(120 * HOUR / 100, rel=1e-3)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_tokens_drip_back_over_the_period():
    clock = Clock()
    buckets = MemoryBuckets(clock=clock)
    assert (await buckets.take("k", 60, 60, 60.0)).allowed  # 1 token a second
    assert not (await buckets.take("k", 10, 60, 60.0)).allowed
    clock.now += 10
    again = await buckets.take("k", 10, 60, 60.0)
    assert again.allowed
    assert again.remaining == 0
    clock.now += 60
    full = await buckets.take("k", 0, 60, 60.0)
    assert full.remaining == 60
    assert full.reset_s == 0


async def test_keys_are_bounded_least_recently_used_first():
    buckets = MemoryBuckets(max_keys=3)
    for key in "abcd":
        await buckets.take(key, 10, 10, HOUR)
    assert len(buckets) == 3
    # "a" was evicted: its bucket is full again; "d" is still empty.
    assert (await buckets.take("a", 10, 10, HOUR)).allowed
    assert not (await buckets.take("d", 1, 10, HOUR)).allowed


def test_gcra_remaining_never_exceeds_limit():
    result = Gcra(7, 1.0).result(True, tat=0.0, now=5.0)
    assert result.remaining == 7
    assert result.reset_s == 0
