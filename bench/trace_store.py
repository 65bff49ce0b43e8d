"""How fast the local trace store writes and answers `plano traces`' queries.

    python bench/trace_store.py [--requests 100000] [--spans 4] [--batch 500] [--calls 1]
                                [--db PATH]

Writes N synthetic requests (each with spans, an event, sometimes signals and captured
messages) in batches as the exporter would, `--calls` of them to a trace (an agent's run
makes many), then times the list, filter, deep-page, stats and get_trace queries (median
of repeated runs). Writes bench/results/trace_store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from proxy.telemetry.store import (
    RequestRow,
    SignalRow,
    SpanEventRow,
    SpanRow,
    StoreBatch,
    TraceStore,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama3.2", "o3-mini"]
ROUTES = ["code", "chat", "summarize", "sql", None]
APIS = ["openai_chat", "anthropic_messages", "openai_responses"]


def synthetic(
    n: int, spans: int, batch: int, seed: int = 7, calls: int = 1
) -> Iterator[StoreBatch]:
    """Requests spread over the last six days (inside the default retention), `calls` to
    a trace, one after another."""
    rng = random.Random(seed)
    start = time.time() - 6 * 86_400
    step = 6 * 86_400 / n
    trace_id = ""
    for first in range(0, n, batch):
        out = StoreBatch()
        for i in range(first, min(first + batch, n)):
            if i % calls == 0:
                trace_id = f"{rng.getrandbits(128):032x}"
            started = start + i * step
            root = f"{rng.getrandbits(64):016x}"
            model = rng.choice(MODELS)
            status = rng.choices([200, 429, 500], [95, 3, 2])[0]
            latency = rng.lognormvariate(6, 0.8)
            captured = i % 10 == 0
            out.requests.append(
                RequestRow(
                    trace_id=trace_id,
                    started_at=started,
                    span_id=root,
                    request_id=f"req-{i}",
                    listener="main",
                    api=rng.choice(APIS),
                    path="/v1/chat/completions",
                    route=rng.choice(ROUTES),
                    router_backend="embedded",
                    requested_model="auto",
                    model=model,
                    provider=model.split("-")[0],
                    status=status,
                    outcome="ok" if status == 200 else "error",
                    latency_ms=latency,
                    ttft_ms=latency * rng.uniform(0.1, 0.5),
                    input_tokens=rng.randint(50, 4000),
                    output_tokens=rng.randint(10, 1000),
                    cost_usd=rng.uniform(0, 0.01),
                    stream=rng.random() < 0.5,
                    signal_count=1 if i % 20 == 0 else 0,
                    session=f"s{i % 500}",
                    request_messages=(
                        [{"role": "user", "content": f"question {i}: " + "lorem ipsum " * 20}]
                        if captured
                        else None
                    ),
                    response_messages=(
                        [{"role": "assistant", "content": "dolor sit amet " * 30}]
                        if captured
                        else None
                    ),
                )
            )
            ns = int(started * 1e9)
            for k in range(spans):
                out.spans.append(
                    SpanRow(
                        span_id=root if k == 0 else f"{rng.getrandbits(64):016x}",
                        trace_id=trace_id,
                        parent_id=None if k == 0 else root,
                        name=["plano.request", "plano.route", "plano.upstream", "plano.stream"][
                            k % 4
                        ],
                        kind="server" if k == 0 else "internal",
                        start_ns=ns + k * 1000,
                        end_ns=ns + int(latency * 1e6),
                        status_code="ok",
                        attributes={
                            "gen_ai.request.model": model,
                            "gen_ai.usage.input_tokens": 100,
                            "http.request.method": "POST",
                            "http.response.status_code": 200,
                            "url.path": "/v1/chat/completions",
                            "plano.route": "code",
                            "server.address": "api.openai.com",
                            "http.request.header.authorization": ["Bearer sk-never-stored-1234"],
                        },
                    )
                )
            out.events.append(SpanEventRow(root, trace_id, "first_token", ns + 5_000_000))
            if i % 20 == 0:
                out.signals.append(SignalRow(trace_id, "frustration", "interaction", 2, 0.7, "no"))
        yield out


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time in ms over `repeat` runs."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--spans", type=int, default=4, help="spans per request")
    parser.add_argument("--batch", type=int, default=500, help="requests per write")
    parser.add_argument("--calls", type=int, default=1, help="requests per trace")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", help="store file (default: a temporary directory)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "trace_store.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "traces.db"
        store = TraceStore.open(path, max_requests=args.requests)
        write_s = write_cpu_s = 0.0
        for batch in synthetic(args.requests, args.spans, args.batch, calls=args.calls):
            started, started_cpu = time.perf_counter(), time.process_time()
            store.write(batch)
            write_s += time.perf_counter() - started
            # CPU (user + system) is what the worker takes from the proxy on a shared
            # machine; wall time adds waits for the disk.
            write_cpu_s += time.process_time() - started_cpu
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        size_mb = path.stat().st_size / 1e6

        # Queries run on a fresh reader, as `plano traces` would.
        reader = TraceStore.open(path, max_requests=args.requests)
        with sqlite3.connect(path) as conn:
            traces = conn.execute(
                "SELECT count(*) FROM (SELECT DISTINCT trace_id FROM requests)"
            ).fetchone()[0]
            deep = conn.execute(
                "SELECT DISTINCT trace_started_at, trace_id FROM requests"
                " ORDER BY trace_started_at DESC, trace_id DESC LIMIT 1 OFFSET ?",
                [int(traces * 0.9)],
            ).fetchone()
            sample = [t for (t,) in conn.execute("SELECT trace_id FROM requests LIMIT 200")]
        day_ago = time.time() - 86_400
        probes = iter(sample * (args.repeat // len(sample) + 1))
        results_ms = {
            "list_newest_page": timed(lambda: reader.list_traces(limit=100), args.repeat),
            "list_filtered_page": timed(
                lambda: reader.list_traces(where={"model": "o3-mini", "status": "500"}),
                args.repeat,
            ),
            "list_outcome_page": timed(
                lambda: reader.list_traces(where={"outcome": "error"}), args.repeat
            ),
            "list_min_latency_page": timed(
                lambda: reader.list_traces(min_latency_ms=2000), args.repeat
            ),
            "list_deep_keyset_page": timed(
                lambda: reader.list_traces(before=deep, limit=100), args.repeat
            ),
            "list_text_search": timed(lambda: reader.list_traces(text="question 4242:"), 3),
            "stats_all_by_model": timed(lambda: reader.stats(group_by="model"), 3),
            "stats_last_day_by_route": timed(
                lambda: reader.stats(since=day_ago, group_by="route"), 3
            ),
            "get_trace": timed(lambda: reader.get_trace(next(probes)), args.repeat),
            "count": timed(reader.count, args.repeat),
            "count_traces": timed(reader.count_traces, 3),
        }
        reader.close()
        # A prune that removes 1% of the traces, as the writer's periodic one would.
        pruner = TraceStore.open(path, max_requests=int(traces * 0.99))
        started = time.perf_counter()
        pruned = pruner.prune()
        results_ms["prune_1pct"] = (time.perf_counter() - started) * 1000
        pruner.close()

    result = {
        "requests": args.requests,
        "traces": traces,
        "spans_per_request": args.spans,
        "calls_per_trace": args.calls,
        "batch": args.batch,
        "write_s": round(write_s, 2),
        "write_requests_per_s": round(args.requests / write_s),
        "write_us_per_request": round(write_s / args.requests * 1e6, 1),
        "write_cpu_us_per_request": round(write_cpu_s / args.requests * 1e6, 1),
        "write_spans_per_s": round(args.requests * args.spans / write_s),
        "db_mb": round(size_mb, 1),
        "pruned": pruned,
        "query_ms": {k: round(v, 3) for k, v in results_ms.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
