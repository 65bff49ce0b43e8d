"""`plano up --workers 1` vs `--workers 2`: throughput at concurrency 64, and memory per worker.

Usage: python bench/workers.py [--seconds S] [--rounds R] [--workers 1,2] [--json PATH]

Processes, all on 127.0.0.1, none pinned:
- bench/lean_upstream.py, the stand-in OpenAI upstream (canned answers from prebuilt bytes);
- `plano up --quiet --workers N` as a user runs it: the parent, N gateway processes and the
  one telemetry worker (traces at its default 100% sampling into SQLite, /metrics);
- wrk (Debian's `wrk`, one thread, 64 connections, bench/wrk_post.lua checking every
  answer) posting a non-streaming Chat Completions request.

On a 2-core machine the load generator and the upstream compete with the gateway for the
same two cores, so `--workers 2` cannot double anything here: the numbers say what a second
process buys when the gateway, not the cores, is what limits. Rounds alternate 1 and 2
workers, a fresh `plano up` each, so drift of a shared VM hits both alike.

Memory: PSS and RSS (/proc/<pid>/smaps_rollup) of each process after the load, once with a
plain config and once with routing preferences, where every worker loads the embedded
router's encoder (ONNX) itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import tracing_overhead as to  # noqa: E402  (wrk helpers)

CONCURRENCY = 64
BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user",'
    b'"content":"Say hello in one short sentence."}],"max_tokens":32}'
)
ROUTES = """
routing_preferences:
  - name: code_generation
    description: writing new code, functions, classes, scripts or tests, and fixing bugs
    models: [openai/gpt-4o-mini]
  - name: complex_reasoning
    description: multi-step reasoning, math proofs, logic puzzles and planning
    models: [openai/gpt-4o-mini]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_answering(port: int, path: str = "/healthz", timeout_s: float = 120.0) -> None:
    from http.client import HTTPConnection

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conn = HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


@contextlib.contextmanager
def upstream() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "lean_upstream.py"), str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the stand-in upstream did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def plano(workers: int, upstream_port: int, routes: bool) -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="plano-bench-") as home:
        port, admin = free_port(), free_port()
        config = Path(home) / "plano.yaml"
        config.write_text(
            "version: v0.4.0\n"
            f"listeners:\n  - {{type: model, address: 127.0.0.1, port: {port}}}\n"
            "model_providers:\n"
            f"  - {{model: openai/gpt-4o-mini, base_url: 'http://127.0.0.1:{upstream_port}/v1',"
            " access_key: $BENCH_KEY, default: true}\n"
            f"admin: {{port: {admin}}}\n" + (ROUTES if routes else "")
        )
        log = Path(home) / "plano.log"
        env = {
            **os.environ,
            "PLANO_HOME": home,
            "BENCH_KEY": "sk-bench-0000",
            "PYTHONPATH": str(ROOT),
        }
        with log.open("w") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "plano_cli",
                    "up",
                    "--quiet",
                    "--workers",
                    str(workers),
                    str(config),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_answering(port)
            deadline = time.monotonic() + 120
            while len(worker_pids(log)) < workers:  # every worker, not just the first
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("plano up did not start:\n" + log.read_text())
                time.sleep(0.1)
            yield {"port": port, "admin": admin, "pid": process.pid, "log": log}
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def worker_pids(log: Path) -> list[int]:
    text = log.read_text()
    pids = dict(re.findall(r"worker (\d+) serving \(pid (\d+)\)", text))
    if not pids and "plano up: serving" in text:
        return [-1]  # one process: the parent serves itself
    return [int(pid) for pid in pids.values()]


def memory_kb(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name.lower()] = int(rest.split()[0])
    return values


def children(pid: int) -> list[int]:
    """Children of every thread (the telemetry worker is spawned from a worker thread)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def process_memory(root_pid: int) -> dict[str, dict[str, int]]:
    """Each process of the tree by its role."""
    out = {"parent": memory_kb(root_pid)}
    for child in children(root_pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"proxy.server.worker_main" in cmdline:
            out[f"worker pid {child}"] = memory_kb(child)
        elif b"proxy.telemetry.worker" in cmdline:
            out["telemetry worker"] = memory_kb(child)
    return out


def run_wrk(port: int, seconds: int, tmp: Path) -> dict[str, Any]:
    body, head = tmp / "body.json", tmp / "headers.txt"
    body.write_bytes(BODY)
    head.write_text("Content-Type: application/json\nAuthorization: Bearer sk-client\n")
    cmd = [
        "wrk",
        "-t1",
        f"-c{CONCURRENCY}",
        f"-d{seconds}s",
        "--timeout=10s",
        "--latency",
        "-s",
        str(ROOT / "bench" / "wrk_post.lua"),
        f"http://127.0.0.1:{port}/v1/chat/completions",
    ]
    env = {
        **os.environ,
        "WRK_BODY_FILE": str(body),
        "WRK_HEADERS_FILE": str(head),
        "WRK_EXPECT_EVENTS": "0",
    }
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    result = to.parse_wrk(out.stdout)
    latencies = sorted(us for us, count in result.pop("latency_us") for _ in range(count))
    elapsed = result["duration_us"] / 1e6
    # As tracing_overhead.Wrk.run: wrk's own "status" count (4xx and 5xx) is within the
    # script's non2xx (any non-2xx), not a socket error to add to it.
    socket_errors = {k: v for k, v in result["errors"].items() if k != "status"}
    non2xx = max(result["non2xx"], result["errors"].get("status", 0))
    errors = non2xx + result["bad"] + sum(socket_errors.values())
    return {
        "rps": result["requests"] / elapsed,
        "requests": result["requests"],
        "errors": errors,
        "p50_ms": latencies[len(latencies) // 2] / 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] / 1000 if latencies else None,
    }


def metric_total(admin: int, name: str) -> float:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    memory: dict[str, Any] = {}
    with upstream() as up, tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for n in counts:
                with plano(n, up, routes=False) as gw:
                    run_wrk(gw["port"], args.warmup, Path(tmp))
                    result = run_wrk(gw["port"], args.seconds, Path(tmp))
                    time.sleep(0.5)  # the last records reach the telemetry worker
                    result["metrics_requests"] = metric_total(gw["admin"], "plano_requests_total")
                    runs[n].append(result)
                    if round_ == 0:
                        memory[f"{n} workers"] = process_memory(gw["pid"])
                    print(f"round {round_ + 1} workers={n}: {result['rps']:.0f} req/s", flush=True)
        for n in counts:
            with plano(n, up, routes=True) as gw:
                run_wrk(gw["port"], args.warmup, Path(tmp))
                memory[f"{n} workers, embedded router"] = process_memory(gw["pid"])
    summary = {
        n: {
            "rps_median": statistics.median(r["rps"] for r in rs),
            "rps_runs": [round(r["rps"]) for r in rs],
            "p50_ms_median": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
        }
        for n, rs in runs.items()
    }
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "wrk": to.wrk_version(),
        },
        "settings": vars(args) | {"json": None, "concurrency": CONCURRENCY},
        "summary": summary,
        "runs": runs,
        "memory_kb": memory,
    }
    print(json.dumps(report, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
