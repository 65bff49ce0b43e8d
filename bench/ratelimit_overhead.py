"""What a `ratelimits` budget adds to a request's path before dispatch.

Usage: python bench/ratelimit_overhead.py [--requests N] [--redis-url URL] [--json PATH]

Times, per request, what the gateway runs for a limited request: `RateLimiter.admit`
(match the selector header, count the input tokens of a parsed chat request as gpt-4o
does, take them from the bucket) and, after the answer, `settle` (debit the output). The
request is a typical chat turn: a system prompt and a user message of ~300 tokens.

Backends: MemoryBuckets always; RedisBuckets on `--redis-url` (a redis-server on loopback)
when the Redis backend (proxy/limits/redis_buckets.py) is installed. Reported: p50 and
p99 of admit, of the token count alone, and of settle, in microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.config import Mode, check_text
from proxy.gateway.exchange import Exchange
from proxy.limits.buckets import MemoryBuckets
from proxy.limits.enforce import RateLimiter
from proxy.limits.tokens import counter
from proxy.percentiles import percentile
from proxy.server.event_loop import run as run_loop
from proxy.wire import openai_chat

CONFIG = """\
version: v0.4.0
listeners: [{type: model, port: 12000}]
model_providers:
  - {model: openai/gpt-4o, access_key: sk-bench, default: true}
ratelimits:
  - model: openai/gpt-4o
    selector: {key: x-team}
    limit: {tokens: 1000000000, unit: minute}
"""
SYSTEM = "You are a careful assistant. Answer briefly, cite sources, and say when unsure."
USER = (
    "Summarize the following meeting notes into three bullet points with owners and dates. "
    "The team reviewed the Q3 roadmap: the billing migration slips two weeks because the "
    "ledger export is still failing on multi-currency invoices; Dana owns the fix. "
) * 6


class FakeRequest:
    """What admit reads of an aiohttp request: its headers."""

    def __init__(self, team: str):
        self.headers = CIMultiDictProxy(
            CIMultiDict({"x-arch-ratelimit-selector": "x-team", "x-team": team})
        )


def micros(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(percentile(ordered, 50) * 1e6, 1),
        "p99_us": round(percentile(ordered, 99) * 1e6, 1),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
    }


async def run(limiter: RateLimiter, requests: int) -> dict:
    chat = openai_chat.parse_request(
        {
            "model": "openai/gpt-4o",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
        }
    )
    tokens = counter()
    admit, count, settle = [], [], []
    for i in range(requests):
        request = FakeRequest(f"team-{i % 50}")
        exchange = Exchange(request_id="r", api="openai_chat", path="/v1/chat/completions")
        started = time.perf_counter()
        admission = await limiter.admit(request, exchange, chat, "openai/gpt-4o")
        admit.append(time.perf_counter() - started)
        started = time.perf_counter()
        tokens.request(chat)
        count.append(time.perf_counter() - started)
        exchange.result = None
        started = time.perf_counter()
        await limiter.settle(admission, exchange)
        settle.append(time.perf_counter() - started)
    return {
        "input_tokens": tokens.request(chat),
        "admit": micros(admit),
        "count_only": micros(count),
        "settle": micros(settle),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = check_text(CONFIG, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.errors]
    config = result.config
    counter()  # loaded once, as at start-up
    results = {"memory": await run(RateLimiter(config, MemoryBuckets()), args.requests)}
    if args.redis_url:
        results["redis"] = await run_redis(config, args.redis_url, args.requests)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


async def run_redis(config, url: str, requests: int) -> dict:
    try:
        from proxy.limits.redis_buckets import RedisBuckets
        from proxy.state.shared import SharedState
    except ImportError as exc:
        return {"skipped": f"the Redis backend is not installed here: {exc}"}
    from proxy.config.model import Secret, SharedStateSettings

    # 1 s, not plano up's 100 ms: a scheduling stall on a loaded VM must not trip the breaker.
    shared = SharedState(SharedStateSettings(url=Secret(url), timeout_s=1.0))
    await shared.open()
    try:
        return await run(RateLimiter(config, RedisBuckets(shared)), requests)
    finally:
        await shared.close()


if __name__ == "__main__":
    run_loop(main())  # the event loop `plano up` serves on (uvloop)
