"""What a rate-limit check in Redis adds to a request: one `RedisBuckets.take()`.

    python bench/ratelimit_redis.py [--runs 20000] [--concurrency 1] [--url redis://...]
                                    [--timeout 1.0]

Starts its own redis-server on a free loopback port (no persistence) unless --url names
one, then times `take()` as the request path calls it: through SharedState (timeout,
breaker, one pooled client) on the event loop `plano up` uses (uvloop). The take is
awaited inline before dispatch, so its latency is what the check adds to a request.
Prints p50/p90/p99 in milliseconds for take() and, for scale, a bare PING through the
same client (the round trip and redis-py's own cost, without the script). Each figure
is the median of --repeat rounds' percentiles, after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from proxy.config.model import Secret, SharedStateSettings
from proxy.limits.redis_buckets import RedisBuckets
from proxy.percentiles import percentile
from proxy.server.event_loop import run as run_loop
from proxy.state.shared import SharedState


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise SystemExit("redis-server did not start")


async def timed(op, runs: int, concurrency: int) -> list[float]:
    """Latency of each call, in ms, with `concurrency` callers at once."""
    samples: list[float] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await op()
            samples.append((time.perf_counter() - started) * 1000)

    share = runs // concurrency
    started = time.perf_counter()
    await asyncio.gather(*(caller(share) for _ in range(concurrency)))
    THROUGHPUT.setdefault(getattr(op, "__name__", "op"), []).append(
        len(samples) / (time.perf_counter() - started)
    )
    return samples


THROUGHPUT: dict[str, list[float]] = {}  # operations a second, per round


async def bench(
    url: str, runs: int, concurrency: int, repeat: int, timeout_s: float
) -> dict[str, list[float]]:
    shared = SharedState(SharedStateSettings(url=Secret(url), timeout_s=timeout_s))
    await shared.open()
    buckets = RedisBuckets(shared)
    keys = [f"bench-team-{i}" for i in range(64)]  # as many buckets as a busy gateway's
    turn = iter(range(10**12))

    async def take() -> None:
        # A budget far above the run: every take is allowed and writes, the common case.
        await buckets.take(keys[next(turn) % 64], 420, 10**12, 60.0)

    async def ping() -> None:
        await shared.run("ping", lambda client: client.ping(), None)

    results: dict[str, list[float]] = {"take": [], "ping": []}
    await timed(take, 2000, concurrency)  # warm-up: connections, the script loaded
    await timed(ping, 2000, concurrency)
    for _ in range(repeat):
        for name, op in (("take", take), ("ping", ping)):
            samples = await timed(op, runs, concurrency)
            results[name].append(samples)  # type: ignore[arg-type]
    if shared.errors:
        raise SystemExit(f"the store failed during the run: {shared.errors}")
    await shared.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--url", help="an existing Redis (default: start one on loopback)")
    # Above plano up's 100 ms: on a shared benchmark machine a scheduling stall can pass
    # 100 ms, and the run would then time the breaker's skips instead of Redis.
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per operation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plano-bench-redis-") as workdir:
        process, url = (None, args.url) if args.url else start_redis(workdir)
        try:
            results = run_loop(bench(url, args.runs, args.concurrency, args.repeat, args.timeout))
        finally:
            if process is not None:
                process.terminate()
                process.wait(5)
    print(f"runs {args.runs} x {args.repeat}, concurrency {args.concurrency}")
    for name, rounds in results.items():
        row = {
            q: statistics.median(percentile(samples, q) for samples in rounds) for q in (50, 90, 99)
        }
        rate = statistics.median(THROUGHPUT[name][-len(rounds) :])
        print(
            f"{name:5} p50 {row[50]:.3f} ms  p90 {row[90]:.3f} ms  p99 {row[99]:.3f} ms"
            f"  ({rate:,.0f}/s)"
        )


if __name__ == "__main__":
    main()
