"""The telemetry worker's CPU per request, without a proxy around it.

    python bench/telemetry_worker.py [--records 20000] [--batch 40] [--stream-share 0.25]
                                     [--profile N] [--json PATH]
    python bench/telemetry_worker.py --hostile [--json PATH]

Feeds the worker's own `TelemetryProcessor` (metrics, signals, cost, spans, the SQLite
store) the records the proxy makes for `bench/tracing_overhead.py`'s requests: the same
canned bodies from `bench/proxy_overhead.py`, a distinct trace per request, in batches the
size the sender thread ships at ~800 requests/s every 50 ms. Reports CPU time
(process_time) per record, which a shared machine disturbs far less than wall time, split
by stage; `--profile N` prints cProfile's top N functions as well.

`--hostile` times instead one batch per hostile record (a 20 MB answer of one letter, a
prompt of one 25,000-character word...), each with 8 ordinary records behind it: the CPU
the batch takes is how long those 8 wait for their traces.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from proxy_overhead import (  # noqa: E402
    CHAT_COMPLETION,
    CONTENT_CHUNKS,
    DONE,
    FINISH_CHUNK,
    ROLE_CHUNK,
    USAGE_CHUNK,
    _openai_request,
)

from proxy.telemetry.metrics import GatewayMetrics  # noqa: E402
from proxy.telemetry.processor import TelemetryProcessor  # noqa: E402
from proxy.telemetry.record import AttemptRecord, TelemetryRecord  # noqa: E402
from proxy.telemetry.settings import WorkerSettings  # noqa: E402
from proxy.telemetry.store import TraceStore  # noqa: E402
from proxy.telemetry.tracecontext import new_span_id, new_trace_id  # noqa: E402

MODEL = "openai/gpt-4o-mini"
STREAM_BODY = ROLE_CHUNK + b"".join(CONTENT_CHUNKS) + FINISH_CHUNK + USAGE_CHUNK + DONE


def record(stream: bool) -> TelemetryRecord:
    start = time.time_ns()
    return TelemetryRecord(
        trace_id=new_trace_id(),
        span_id=new_span_id(),
        sampled=True,
        start_ns=start,
        end_ns=start + 2_500_000,
        request_id=f"req-{new_span_id()}",
        listener="model",
        api="openai_chat",
        path="/v1/chat/completions",
        stream=stream,
        passthrough=True,
        requested_model="gpt-4o-mini",
        model=MODEL,
        provider="openai",
        status=200,
        first_token_ns=start + 1_200_000,
        input_tokens=12,
        output_tokens=9,
        attempts=[
            AttemptRecord(new_span_id(), MODEL, "openai", "ok", start + 100_000, start + 2_400_000)
        ],
        request_body=_openai_request(stream),
        response_body=STREAM_BODY if stream else CHAT_COMPLETION,
    )


def batches(n: int, size: int, stream_share: float) -> list[list[TelemetryRecord]]:
    every = round(1 / stream_share) if stream_share > 0 else 0
    records = [record(bool(every) and i % every == 0) for i in range(n)]
    return [records[i : i + size] for i in range(0, n, size)]


def _chat(content: str) -> bytes:
    return json.dumps(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    ).encode()


def _answer(content: str) -> bytes:
    message = {"role": "assistant", "content": content}
    return json.dumps({"choices": [{"index": 0, "message": message}]}).encode()


def _stream_of_small_deltas(size: int) -> bytes:
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"ab"}}]}\n\n'
    return chunk * (size // len(chunk))


def hostile_records() -> dict[str, TelemetryRecord]:
    def hostile(**fields: object) -> TelemetryRecord:
        base = record(stream=False)
        for name, value in fields.items():
            setattr(base, name, value)
        return base

    many = [{"role": "user", "content": "x"}] * 800_000
    return {
        "a 20 MB answer of one letter": hostile(response_body=_answer("a" * 20_000_000)),
        "a prompt of one 25,000-character word": hostile(request_body=_chat("a" * 25_000)),
        "a 1 MiB prompt of `a-a-…` then dashes": hostile(
            request_body=_chat("a-" * 20 + "-" * (1 << 20))
        ),
        "a 1 MiB prompt of `key: ` pairs": hostile(request_body=_chat("key: " * (1 << 18))),
        "a 1 MiB stream of 2-letter deltas": hostile(
            stream=True, response_body=_stream_of_small_deltas(1 << 20)
        ),
        "800,000 messages (24 MB body)": hostile(
            request_body=json.dumps({"model": "gpt-4o", "messages": many}).encode()
        ),
    }


def hostile(args: argparse.Namespace) -> None:
    results = {}
    for name, bad in hostile_records().items():
        with tempfile.TemporaryDirectory() as tmp:
            store = TraceStore.open(Path(tmp) / "traces.db")
            processor = TelemetryProcessor(WorkerSettings(), GatewayMetrics(), store)
            processor.process(batches(40, 40, 0.25)[0])  # warm
            batch = [bad] + [record(stream=False) for _ in range(8)]
            started, started_cpu = time.perf_counter(), time.process_time()
            processor.process(batch)
            cpu_s, wall_s = time.process_time() - started_cpu, time.perf_counter() - started
            results[name] = {
                "cpu_s": round(cpu_s, 3),
                "wall_s": round(wall_s, 3),
                "stored": store.count() - 40,
            }
            store.close()
        print(f"{name}: {results[name]}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--stream-share", type=float, default=0.25)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--hostile", action="store_true", help="time hostile records instead")
    args = parser.parse_args()
    if args.hostile:
        hostile(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        settings = WorkerSettings(store_path=str(Path(tmp) / "traces.db"), max_traces=10_000_000)
        store = TraceStore.open(settings.store_path, max_requests=settings.max_traces)
        processor = TelemetryProcessor(settings, GatewayMetrics(), store)
        warm = batches(400, args.batch, args.stream_share)
        for batch in warm:
            processor.process(batch)
        work = batches(args.records, args.batch, args.stream_share)
        profiler = cProfile.Profile() if args.profile else None
        started, started_cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for batch in work:
            processor.process(batch)
        if profiler:
            profiler.disable()
        cpu_s = time.process_time() - started_cpu
        wall_s = time.perf_counter() - started
        stored = store.count()
        store.close()

    result = {
        "records": args.records,
        "batch": args.batch,
        "stream_share": args.stream_share,
        "cpu_us_per_record": round(cpu_s / args.records * 1e6, 1),
        "wall_us_per_record": round(wall_s / args.records * 1e6, 1),
        "stored": stored - 400,
        "profiled": bool(profiler),
        "machine": {
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
    }
    print(json.dumps(result, indent=2))
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(args.profile)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
