"""What tracing costs the gateway: throughput with telemetry off, at 0% and at 100% sampling.

Usage: python bench/tracing_overhead.py [--quick] [--json PATH] [--worker-cpu {0,1}]
           [--load {wrk,python}] [--upstream {lean,aiohttp}] [--py-spy DIR] [--keep-store]

Placement (2 cores): the load generator and the stand-in upstream share CPU 0, every proxy
process is pinned to CPU 1. One proxy process per scenario, all serving the same passthrough
OpenAI request:
- `off`: ProxyServer(telemetry=None), nothing recorded;
- `sampling0@cpuN`: telemetry on, tracing.random_sampling 0 (metrics only);
- `sampling100@cpuN`: random_sampling 100 with the defaults `plano up` uses (store, signals
  and message capture on), the trace store in a temp dir, admin on a free port.
The telemetry worker process of each telemetry scenario is moved (every one of its threads)
to CPU N: N=0 shares the load generator's core (a 2-core production box gives the worker the
core the proxy does not use), N=1 shares the proxy's core (the worst case: telemetry
competes with the proxy itself). `--worker-cpu` picks one; by default both run.

Load modes (`--load`):
- `wrk` (the default): the c=64 and stream (c=16) phases are driven by wrk (Debian package
  `wrk`, 4.1), `taskset -c 0 wrk -t1 -cN -dTs --latency -s bench/wrk_post.lua URL`, which
  POSTs the same body and headers as the Python generator and checks every answer (status
  2xx, a chat.completion body, or a stream of exactly the expected SSE events ending in
  [DONE]); any non-2xx, bad body or socket error makes the run invalid. The upstream is
  bench/lean_upstream.py (a raw asyncio.Protocol on uvloop answering prebuilt bytes).
  wrk runs whole seconds: durations in the settings are rounded up. It does not
  time the first token, so the stream phase has whole-stream latency only. The c=1 latency
  phase still uses the Python generator (count-based, comparable with earlier runs; at c=1
  CPU 0 is far from busy and the client's own time cancels in "added p50").
- `python`: the earlier setup, the aiohttp load generator of bench/proxy_overhead.py in this
  process and its aiohttp stand-in upstream (`--upstream` overrides either default).
Why wrk is the default: in production the client and the provider are other machines. The
Python generator plus the aiohttp upstream cost CPU 0 about as much per request as the proxy
costs CPU 1 (~613 vs ~753 µs), so with the telemetry worker (~500 µs/request) also on CPU 0
that core saturated first and the benchmark measured the load generator fighting the worker,
not the gateway. wrk and the lean upstream cost a small fraction of that, leaving CPU 0 the
headroom a separate client and provider would; the JSON records the load side's CPU per
request ("load" and each phase's load_generator/upstream_cpu_us_per_request).

The proxy is sent every request wrk writes, including up to c that are still in flight when
wrk stops and closes its connections: the proxy finishes those as client disconnects (499),
which are traced like any other request. So the count of requests sent comes from the wrk
script's own counter of requests written, not from wrk's completed-request count. Their
cost lands in the window's CPU, which is divided by the requests answered: CPU per request
reads at most c/answered too high (about 0.3% for a full 10 s window at c=64).

All scenarios take turns in rounds, in a rotating order, so drift of a shared VM hits all
alike. After every measured window the benchmark waits for the worker to go idle, so a
backlog never spills into the next scenario's window; how long that took ("drain") shows
whether the worker keeps up. CPU time of the proxy, worker, upstream and this process is
read from /proc/<pid>/stat around each window, wrk's from its rusage when it exits, and
steal from /proc/stat.

At the end the proxies stop (flushing telemetry) and each trace store is counted: the
sampling100 stores must hold one request row per request sent, the sampling0 ones none.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

# bench/ is not a package: import the sibling benchmark by path, for its upstream, load
# generator, child-process plumbing and machine readings.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import lean_upstream
import proxy_overhead as po

GOAL_MAX_LOSS = 0.10  # sampling100 must keep at least 90% of the throughput with tracing off
# The default store limit (100,000) could prune rows in a long run, and then the count
# check would miss requests that were in fact stored. Pruning still runs every 1,000 rows.
MAX_TRACES = 10_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_POLL_S = 0.1
SETTLE_QUIET_POLLS = 2  # worker CPU unchanged this many polls in a row: it is idle
ROOT = Path(__file__).resolve().parents[1]
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class Settings:
    c1_requests: int  # per scenario over all rounds, at concurrency 1
    c1_warmup: int
    cn_seconds: float  # per scenario per round, at `concurrency`
    cn_warmup_s: float
    stream_seconds: float  # per scenario per round, at `stream_concurrency`
    stream_warmup_s: float
    rounds: int
    concurrency: int = 64
    stream_concurrency: int = 16
    budget_s: float = 840.0  # hard bound on the measuring phase
    settle_cap_s: float = 60.0  # longest wait for a worker to finish its backlog


FULL = Settings(
    c1_requests=2000,
    c1_warmup=200,
    cn_seconds=10.0,
    cn_warmup_s=2.0,
    stream_seconds=5.0,
    stream_warmup_s=1.0,
    rounds=4,
)
QUICK = Settings(
    c1_requests=200,
    c1_warmup=30,
    cn_seconds=1.5,
    cn_warmup_s=0.5,
    stream_seconds=1.0,
    stream_warmup_s=0.3,
    rounds=2,
    budget_s=150.0,
    settle_cap_s=20.0,
)


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    sampling: float | None  # None: telemetry off
    worker_cpu: int | None  # the core the telemetry worker is moved to
    store_path: str | None


def scenarios_for(worker_cpus: list[int], placement: dict[int, int], tmp: Path) -> list[Scenario]:
    out = [Scenario("off", None, None, None)]
    for label in worker_cpus:
        for sampling in (0, 100):
            key = f"sampling{sampling}@cpu{label}"
            store = str(tmp / f"{key.replace('@', '_')}.db")
            out.append(Scenario(key, float(sampling), placement[label], store))
    return out


# --------------------------------------------------------------------------- the proxy child


def proxy_main(conn: Connection, cpu: int | None, upstream_port: int, scenario: Scenario) -> None:
    po._child_setup(cpu)
    # The same event loop `plano up` runs on (uvloop when installed).
    from proxy.server.event_loop import run

    run(_proxy(conn, upstream_port, scenario))


def _config(upstream_port: int, sampling: float | None) -> Any:
    from proxy.config import Mode, check_text

    tracing = f"tracing: {{random_sampling: {sampling:g}}}\n" if sampling is not None else ""
    result = check_text(
        textwrap.dedent(
            f"""\
            version: v0.4.0
            listeners: [{{name: bench, type: model, port: 12000}}]
            model_providers:
              - model: openai/{po.MODEL}
                base_url: http://127.0.0.1:{upstream_port}/v1
                access_key: x
                default: true
            """
        )
        + tracing,
        env={},
        mode=Mode.SERVE,
    )
    if not result.ok:
        raise SystemExit(f"bench config rejected: {[p.message for p in result.errors]}")
    listeners = tuple(
        dataclasses.replace(lst, port=0, address="127.0.0.1") for lst in result.config.listeners
    )
    return dataclasses.replace(result.config, listeners=listeners)


async def _proxy(conn: Connection, upstream_port: int, scenario: Scenario) -> None:
    from proxy.server.runner import ProxyServer
    from proxy.telemetry.settings import worker_settings

    config = _config(upstream_port, scenario.sampling)
    telemetry = None
    if scenario.sampling is not None:
        # What `plano up` would build from this config, with the store and admin moved aside.
        telemetry = worker_settings(
            config, store_path=scenario.store_path, admin_port=0, max_traces=MAX_TRACES
        )
    server = ProxyServer(config, shutdown_timeout=1.0, telemetry=telemetry)
    await server.start()
    sink = server.sink  # server.stop() forgets it; its counters are read after the stop
    worker_pid = sink.pid if sink is not None else None
    affinity_start: dict[str, list[int]] = {}
    if worker_pid is not None and scenario.worker_cpu is not None:
        affinity_start = await _pin_worker(worker_pid, scenario.worker_cpu)
    conn.send(
        {
            "port": server.bound[0].port,
            "worker_pid": worker_pid,
            "admin_port": server.admin_port,
            "worker_affinity_at_start": affinity_start,
        }
    )
    affinity_end: dict[str, list[int]] = {}
    try:
        await po._until_parent_says_stop(conn)
        if worker_pid is not None:
            # Threads the worker started later inherit their creator's mask: check them all.
            affinity_end = _task_affinity(worker_pid)
    finally:
        await server.stop()
    report = {
        "sink_sent": sink.sent if sink is not None else None,
        "sink_dropped": sink.dropped if sink is not None else None,
        "worker_stats": sink.worker_stats if sink is not None else None,
        "worker_affinity_at_end": affinity_end,
    }
    with contextlib.suppress(OSError):
        conn.send(report)


def _tasks(pid: int) -> list[int]:
    try:
        return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []


def _task_affinity(pid: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for tid in _tasks(pid):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            out[f"{tid} {name}"] = sorted(os.sched_getaffinity(tid))
    return out


async def _pin_worker(pid: int, cpu: int) -> dict[str, list[int]]:
    """Move every thread of the worker to `cpu`.

    os.sched_setaffinity(pid) moves the main thread only. The worker's writer thread (the
    one doing spans, signals and SQLite) exists before it reports ready, and kept the mask
    it inherited from this process: the proxy's core. So every task is moved, and again a
    moment later for threads started just after "ready" (reader, to_thread executor).
    """
    for _ in range(2):
        for tid in _tasks(pid):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, {cpu})
        await asyncio.sleep(0.5)
    return _task_affinity(pid)


# --------------------------------------------------------------------------- CPU readings


def process_cpu_s(pid: int | None, tid: int | None = None) -> float | None:
    """utime + stime of a whole process (all its threads), or of one of its threads."""
    if pid is None:
        return None
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path) as f:
            # comm may hold spaces: fields are counted after its closing parenthesis.
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _core_jiffies(before: list[int], after: list[int]) -> list[int]:
    """[busy, steal, total, task] jiffies; busy is everything but idle, iowait and steal;
    task is user + nice + system, the part processes are charged for (not irq, softirq)."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta)
    idle, iowait, steal = delta[3], delta[4], delta[7]
    return [total - idle - iowait - steal, steal, total, delta[0] + delta[1] + delta[2]]


def _foreign_pct(task_jiffies: int, total_jiffies: int, ours_s: float) -> float:
    """Share of a core that processes other than ours were charged for, in percent."""
    if not total_jiffies:
        return 0.0
    return round(100 * max(0.0, task_jiffies / CLK_TCK - ours_s) / (total_jiffies / CLK_TCK), 1)


# --------------------------------------------------------------------------- wrk


def wrk_version() -> str | None:
    """wrk's own version line ("wrk debian/4.1.0-3+b2 [epoll]"); it exits 1 after `-v`."""
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" Copyright", 1)[0].strip() if first else None


def wrk_seconds(seconds: float) -> int:
    """wrk's -d takes whole seconds: rounded up."""
    return max(1, math.ceil(seconds - 1e-9))


_WRK_TEXT = {
    "rps": re.compile(r"^Requests/sec:\s+([\d.]+)", re.M),
    "non_2xx_3xx": re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.M),
    "socket_errors": re.compile(
        r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
    ),
}


def parse_wrk(stdout: str) -> dict[str, Any]:
    """The script's WRK_RESULT line, with what wrk itself printed as a cross-check."""
    line = next((x for x in stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no WRK_RESULT line: {stdout[-2000:]!r}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    text: dict[str, Any] = {}
    if m := _WRK_TEXT["rps"].search(stdout):
        text["rps"] = float(m.group(1))
    m = _WRK_TEXT["non_2xx_3xx"].search(stdout)
    text["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = _WRK_TEXT["socket_errors"].search(stdout)
    names = ("connect", "read", "write", "timeout")
    text["socket_errors"] = dict(zip(names, map(int, m.groups()), strict=True)) if m else {}
    result["text"] = text
    return result


class Wrk:
    """Runs wrk pinned to one core, with bench/wrk_post.lua, and reads its result."""

    def __init__(self, cpu: int, tmp: Path):
        self.cpu = cpu
        self.tmp = tmp
        self.files: dict[tuple[bytes, tuple[tuple[str, str], ...]], tuple[Path, Path]] = {}
        self.commands: dict[str, str] = {}  # one example command per phase kind, for the record

    def _files(self, target: po.Target) -> tuple[Path, Path]:
        # What aiohttp's client sends besides the target's own headers (Host and
        # Content-Length wrk adds itself), so the proxy sees the same request either way.
        defaults = getattr(aiohttp.ClientRequest, "DEFAULT_HEADERS", {})
        headers = {**{str(k): str(v) for k, v in defaults.items()}, **target.headers}
        key = (target.body, tuple(sorted(headers.items())))
        if key not in self.files:
            n = len(self.files)
            body, head = self.tmp / f"wrk_body_{n}.json", self.tmp / f"wrk_headers_{n}.txt"
            body.write_bytes(target.body)
            head.write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
            self.files[key] = (body, head)
        return self.files[key]

    async def run(
        self, target: po.Target, seconds: float, concurrency: int, sample: po.Sample
    ) -> Ran:
        body, head = self._files(target)
        duration = wrk_seconds(seconds)
        cmd = [
            "taskset",
            "-c",
            str(self.cpu),
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            f"--timeout={math.ceil(po.REQUEST_TIMEOUT_S)}s",
            "--latency",
            "-s",
            str(WRK_SCRIPT),
            target.url,
        ]
        env = {
            **os.environ,
            "WRK_BODY_FILE": str(body),
            "WRK_HEADERS_FILE": str(head),
            "WRK_EXPECT_EVENTS": str(po.EXPECTED_STREAM_EVENTS if target.stream else 0),
        }
        kind = target.name.split("|", 1)[-1]
        # Recorded relative to the repository: results must not carry this machine's paths.
        shown = [os.path.relpath(c, ROOT) if c == str(WRK_SCRIPT) else c for c in cmd]
        self.commands.setdefault(f"{kind} c={concurrency} {duration}s", " ".join(shown))
        stdout, stderr, code, cpu_s = await _run_measured(cmd, env, duration + 60)
        if code != 0:
            raise RuntimeError(f"wrk exited {code}: {stderr[-2000:]!r} {stdout[-2000:]!r}")
        result = parse_wrk(stdout)
        histogram = result.pop("latency_us")
        for micros, count in histogram:
            sample.latencies.extend([micros / 1e6] * count)
        socket_errors = {k: v for k, v in result["errors"].items() if k != "status"}
        # wrk's own count ("status": 4xx and 5xx) is within the script's (any non-2xx)
        non2xx = max(result["non2xx"], result["errors"]["status"])
        errors = non2xx + result["bad"] + sum(socket_errors.values())
        if errors:
            sample.errors += errors
            sample.first_error = sample.first_error or (
                f"{target.name}: wrk: {non2xx} non-2xx, {result['bad']} bad bodies, "
                f"socket errors {socket_errors}; first: {result['first_bad'] or '-'}"
            )
        elapsed = result["duration_us"] / 1e6
        sample.elapsed_s += elapsed
        result["cpu_s"] = round(cpu_s, 3)
        result["rps"] = round(result["requests"] / elapsed, 1) if elapsed else 0.0
        # Written but not answered when wrk stopped: at most one per connection (the proxy
        # still serves them, as client disconnects). Outside that, the `sent` count is off.
        result["in_flight_at_stop"] = in_flight = result["sent"] - result["requests"]
        if not 0 <= in_flight <= concurrency + sum(socket_errors.values()):
            print(
                f"warning: {target.name}: wrk wrote {result['sent']} requests and got "
                f"{result['requests']} answers with {concurrency} connections",
                file=sys.stderr,
            )
        return Ran(sent=result["sent"], wrk_cpu_s=cpu_s, wrk=result)


async def _run_measured(
    cmd: list[str], env: dict[str, str], timeout_s: float
) -> tuple[str, str, int, float]:
    """(stdout, stderr, exit code, CPU seconds) of a child, its CPU from wait4's rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        waited = asyncio.get_running_loop().run_in_executor(None, os.wait4, proc.pid, 0)
        try:
            _, status, usage = await asyncio.wait_for(asyncio.shield(waited), timeout_s)
        except BaseException:
            proc.kill()  # the executor's wait4 reaps it
            raise
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped: Popen must not
        out.seek(0)
        err.seek(0)
        return (
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            code,
            usage.ru_utime + usage.ru_stime,
        )


# --------------------------------------------------------------------------- measuring


@dataclass
class Proxy:
    scenario: Scenario
    child: po.Child
    port: int
    worker_pid: int | None
    admin_port: int | None
    affinity_start: dict[str, list[int]]
    sent: int = 0  # every request this process was sent, warm-ups included
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        pid = self.child.process.pid
        assert pid is not None
        return pid


@dataclass
class Window:
    round: int
    requests: int
    errors: int
    elapsed_s: float
    rps: float
    proxy_cpu_s: float
    # the proxy's event-loop thread; the rest is the sink's sender thread (and executors)
    proxy_main_thread_cpu_s: float
    worker_cpu_s: float | None
    # the load generator (this process, and wrk when it ran) and the upstream: the rest of
    # the work on CPU 0
    driver_cpu_s: float
    generator_cpu_s: float  # this process + wrk
    upstream_cpu_s: float
    drain_s: float | None  # from the window's end until the worker's CPU stopped rising
    settled: bool
    # jiffies over the load window: [busy, steal, total, task] per core
    cores: dict[str, list[int]]
    # CPU over the load window of every process of this benchmark placed on the core
    ours_cpu_s: dict[str, float]
    # the rest of the core's busy time: other people's processes on a shared VM
    foreign_pct: dict[str, float]
    load: str = "python"  # what drove this window: "python" or "wrk"
    sent: int = 0  # requests the proxy was sent (with wrk: including those cut off in flight)
    wrk: dict[str, Any] | None = None  # what wrk reported, when it drove the window


@dataclass(frozen=True, slots=True)
class Ran:
    """What a load run did beyond filling the sample."""

    sent: int  # requests the proxy was sent
    wrk_cpu_s: float = 0.0  # CPU of the wrk process (it starts and exits inside the run)
    wrk: dict[str, Any] | None = None


# Fills the sample with latencies and errors for one target.
Runner = Callable[[po.Target, po.Sample], Awaitable[Ran]]


@dataclass
class Phase:
    label: str
    stream: bool
    concurrency: int
    load: str  # "python" or "wrk"
    warmup: Callable[[], Runner]
    measure: Callable[[int], Runner]  # by round


@dataclass(frozen=True, slots=True)
class Snapshot:
    process_s: dict[int, float]  # CPU seconds so far of each of our processes, by pid
    main_thread_s: dict[int, float]  # the same for the main thread (the event loop) only
    cores: dict[str, list[int]]  # /proc/stat jiffies per core


def _delta(before: Snapshot, after: Snapshot, pid: int | None) -> float | None:
    if pid is None or pid not in before.process_s or pid not in after.process_s:
        return None
    return round(after.process_s[pid] - before.process_s[pid], 3)


async def settle(proxy: Proxy, cap_s: float) -> tuple[float | None, bool]:
    """Wait until the worker has processed everything sent so far (its CPU stops rising).

    The sink ships every 50 ms; a worker that keeps up goes quiet within a poll or two.
    """
    if proxy.worker_pid is None:
        return None, True
    started = time.perf_counter()
    last = process_cpu_s(proxy.worker_pid)
    last_change = started
    quiet = 0
    while quiet < SETTLE_QUIET_POLLS:
        await asyncio.sleep(SETTLE_POLL_S)
        now = process_cpu_s(proxy.worker_pid)
        if now != last:
            quiet, last, last_change = 0, now, time.perf_counter()
        else:
            quiet += 1
        if time.perf_counter() - started > cap_s:
            return round(last_change - started, 2), False
    return round(last_change - started, 2), True


class Bench:
    def __init__(
        self,
        settings: Settings,
        proxies: dict[str, Proxy],
        cores: dict[str, int],
        ours: dict[str, list[int]],
        py_spy_dir: Path | None,
        wrk: Wrk | None,
    ):
        self.s = settings
        self.proxies = proxies
        self.cores = cores  # role ("shared", "proxy") -> cpu number
        self.ours = ours  # role -> pids of this benchmark's processes pinned there
        self.generator_pid, self.upstream_pid = ours["shared"][:2]
        self.wrk = wrk  # None: the Python generator drives every phase
        self.sessions = po.Sessions()
        self.py_spy_dir = py_spy_dir
        self.samples: dict[str, dict[str, po.Sample]] = {}
        self.windows: dict[str, dict[str, list[Window]]] = {}
        self.unsettled: list[str] = []

    def snapshot(self) -> Snapshot:
        process_s, main_thread_s = {}, {}
        for pids in self.ours.values():
            for pid in pids:
                value = process_cpu_s(pid)
                if value is not None:
                    process_s[pid] = value
        for proxy in self.proxies.values():
            value = process_cpu_s(proxy.pid, proxy.pid)
            if value is not None:
                main_thread_s[proxy.pid] = value
        return Snapshot(process_s, main_thread_s, po.cpu_times())

    async def run_phase(self, phase: Phase, targets: dict[str, po.Target]) -> None:
        samples = {key: po.Sample() for key in targets}
        windows: dict[str, list[Window]] = {key: [] for key in targets}
        self.samples[phase.label], self.windows[phase.label] = samples, windows
        for key, target in targets.items():
            throwaway = po.Sample()
            ran = await phase.warmup()(target, throwaway)
            self.proxies[key].sent += ran.sent
            if throwaway.errors:
                raise RuntimeError(f"warm-up failed: {throwaway.first_error}")
            await settle(self.proxies[key], self.s.settle_cap_s)
        keys = list(targets)
        for r in range(self.s.rounds):
            # A rotating order: no scenario always runs first, or right after sampling100.
            for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
                window = await self.window(phase, r, targets[key], samples[key])
                windows[key].append(window)
        for key, sample in samples.items():
            if sample.errors:
                print(
                    f"warning: {phase.label} {key}: {sample.errors} errors, "
                    f"first: {sample.first_error}",
                    file=sys.stderr,
                )

    async def window(self, phase: Phase, r: int, target: po.Target, sample: po.Sample) -> Window:
        key = target.name.split("|", 1)[0]
        proxy = self.proxies[key]
        n0, e0, t0 = len(sample.latencies), sample.errors, sample.elapsed_s
        spies = await self.start_py_spy(phase, key, r)
        before = self.snapshot()
        ran = await phase.measure(r)(target, sample)
        loaded = self.snapshot()
        # Per-request CPU runs until the worker is idle again: it includes the last batches.
        drain_s, settled = await settle(proxy, self.s.settle_cap_s)
        settled_snap = self.snapshot()
        for spy in spies:
            await spy.wait()
        if not settled:
            self.unsettled.append(f"{phase.label} {key} round {r}")
        requests, errors = len(sample.latencies) - n0, sample.errors - e0
        proxy.sent += ran.sent
        elapsed = sample.elapsed_s - t0
        cores, ours_cpu, foreign = {}, {}, {}
        for role, cpu in self.cores.items():
            name = f"cpu{cpu}"
            if name not in before.cores or name not in loaded.cores:
                continue
            cores[role] = jiffies = _core_jiffies(before.cores[name], loaded.cores[name])
            mine = sum(_delta(before, loaded, pid) or 0.0 for pid in self.ours[role])
            if role == "shared":
                mine += ran.wrk_cpu_s  # wrk ran (and exited) inside the window, on this core
            ours_cpu[role] = round(mine, 3)
            foreign[role] = _foreign_pct(jiffies[3], jiffies[2], mine)
        proxy_cpu = _delta(before, settled_snap, proxy.pid)
        generator_cpu = (_delta(before, loaded, self.generator_pid) or 0.0) + ran.wrk_cpu_s
        upstream_cpu = _delta(before, loaded, self.upstream_pid) or 0.0
        main_before = before.main_thread_s.get(proxy.pid, 0.0)
        main_cpu = settled_snap.main_thread_s.get(proxy.pid, main_before) - main_before
        return Window(
            round=r,
            requests=requests,
            errors=errors,
            elapsed_s=round(elapsed, 3),
            rps=round(requests / elapsed, 1) if elapsed else 0.0,
            proxy_cpu_s=proxy_cpu or 0.0,
            proxy_main_thread_cpu_s=round(main_cpu, 3),
            worker_cpu_s=_delta(before, settled_snap, proxy.worker_pid),
            driver_cpu_s=round(generator_cpu + upstream_cpu, 3),
            generator_cpu_s=round(generator_cpu, 3),
            upstream_cpu_s=round(upstream_cpu, 3),
            drain_s=drain_s,
            settled=settled,
            cores=cores,
            ours_cpu_s=ours_cpu,
            foreign_pct=foreign,
            load=phase.load,
            sent=ran.sent,
            wrk=ran.wrk,
        )

    async def start_py_spy(self, phase: Phase, key: str, r: int) -> list[Any]:
        """py-spy on the proxy and its worker for the windows at full concurrency (profiling
        runs only)."""
        if self.py_spy_dir is None or phase.concurrency != self.s.concurrency or phase.stream:
            return []
        proxy = self.proxies[key]
        name = key.replace("@", "_")
        spies = [await self._py_spy(proxy.pid, self.py_spy_dir / f"{name}_r{r}.txt")]
        if proxy.worker_pid is not None:
            out = self.py_spy_dir / f"{name}_worker_r{r}.txt"
            spies.append(await self._py_spy(proxy.worker_pid, out))
        await asyncio.sleep(0.3)  # attach before the window starts
        return spies

    async def _py_spy(self, pid: int, out: Path) -> Any:
        return await asyncio.create_subprocess_exec(
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--threads",
            "--function",  # one row per function, not per line
            "--nonblocking",  # never pause the proxy: its timing stays close to unprofiled
            "--format",
            "raw",
            "--duration",
            str(math.ceil(self.s.cn_seconds)),
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def run(self) -> None:
        s = self.s
        chat, stream = po._openai_request(False), po._openai_request(True)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}

        def targets(body: bytes, is_stream: bool, kind: str) -> dict[str, po.Target]:
            return {
                key: po.Target(
                    f"{key}|{kind}",
                    f"http://127.0.0.1:{p.port}/v1/chat/completions",
                    body,
                    headers,
                    stream=is_stream,
                )
                for key, p in self.proxies.items()
            }

        def count(n: int) -> Runner:
            """n requests one after another, from the Python generator."""

            async def run(target: po.Target, sample: po.Sample) -> Ran:
                n0 = len(sample.latencies) + sample.errors
                await po.run_count(self.sessions.get(target, 1), target, n, sample)
                return Ran(sent=len(sample.latencies) + sample.errors - n0)

            return run

        def timed(seconds: float, concurrency: int) -> Runner:
            """`concurrency` closed-loop clients for `seconds`, from wrk or Python."""
            wrk = self.wrk

            async def run(target: po.Target, sample: po.Sample) -> Ran:
                if wrk is not None:
                    return await wrk.run(target, seconds, concurrency, sample)
                n0 = len(sample.latencies) + sample.errors
                session = self.sessions.get(target, concurrency)
                await po.run_for(session, target, seconds, concurrency, sample)
                return Ran(sent=len(sample.latencies) + sample.errors - n0)

            return run

        timed_load = "wrk" if self.wrk is not None else "python"

        def c1_share(r: int) -> int:
            # c1_requests split over the rounds, the remainder in the first ones.
            return s.c1_requests // s.rounds + (1 if r < s.c1_requests % s.rounds else 0)

        n, sn = s.concurrency, s.stream_concurrency
        plan = [
            (
                Phase(
                    "passthrough c=1",
                    False,
                    1,
                    "python",
                    lambda: count(s.c1_warmup),
                    lambda r: count(c1_share(r)),
                ),
                targets(chat, False, "chat"),
            ),
            (
                Phase(
                    f"passthrough c={n}",
                    False,
                    n,
                    timed_load,
                    lambda: timed(s.cn_warmup_s, n),
                    lambda r: timed(s.cn_seconds, n),
                ),
                targets(chat, False, "chat"),
            ),
            (
                Phase(
                    f"stream c={sn}",
                    True,
                    sn,
                    timed_load,
                    lambda: timed(s.stream_warmup_s, sn),
                    lambda r: timed(s.stream_seconds, sn),
                ),
                targets(stream, True, "stream"),
            ),
        ]
        try:
            async with asyncio.timeout(s.budget_s):
                for phase, phase_targets in plan:
                    print(f"  {phase.label} ...", file=sys.stderr, flush=True)
                    await self.run_phase(phase, phase_targets)
        finally:
            await self.sessions.close()


# --------------------------------------------------------------------------- report


def phase_report(sample: po.Sample, windows: list[Window]) -> dict[str, Any]:
    requests = sum(w.requests for w in windows) or 1
    out: dict[str, Any] = {
        "load": windows[0].load if windows else None,
        "latency": asdict(po.summarize(sample.latencies, sample.errors, sample.elapsed_s)),
        "requests_sent": sum(w.sent for w in windows),
    }
    if sample.ttfts:
        out["ttft"] = asdict(po.summarize(sample.ttfts, sample.errors, sample.elapsed_s))
    out["rps_per_round"] = [w.rps for w in windows]
    out["proxy_cpu_us_per_request"] = round(1e6 * sum(w.proxy_cpu_s for w in windows) / requests)
    out["proxy_main_thread_us_per_request"] = round(
        1e6 * sum(w.proxy_main_thread_cpu_s for w in windows) / requests
    )
    out["proxy_other_threads_us_per_request"] = (
        out["proxy_cpu_us_per_request"] - out["proxy_main_thread_us_per_request"]
    )
    worker = [w.worker_cpu_s for w in windows if w.worker_cpu_s is not None]
    out["worker_cpu_us_per_request"] = round(1e6 * sum(worker) / requests) if worker else None
    out["driver_cpu_us_per_request"] = round(1e6 * sum(w.driver_cpu_s for w in windows) / requests)
    # the load side, split: the generator (this process, + wrk) and the stand-in upstream
    out["load_generator_cpu_us_per_request"] = round(
        1e6 * sum(w.generator_cpu_s for w in windows) / requests
    )
    out["upstream_cpu_us_per_request"] = round(
        1e6 * sum(w.upstream_cpu_s for w in windows) / requests
    )
    wrk_cpu = [w.wrk["cpu_s"] for w in windows if w.wrk]
    if wrk_cpu:
        out["wrk_cpu_us_per_request"] = round(1e6 * sum(wrk_cpu) / requests)
    drains = [w.drain_s for w in windows if w.drain_s is not None]
    out["worker_drain_s_max"] = max(drains) if drains else None
    for role in ("shared", "proxy"):
        busy = sum(w.cores[role][0] for w in windows if role in w.cores)
        steal = sum(w.cores[role][1] for w in windows if role in w.cores)
        total = sum(w.cores[role][2] for w in windows if role in w.cores) or 1
        out[f"{role}_core_busy_pct"] = round(100 * busy / total, 1)
        out[f"{role}_core_steal_pct"] = round(100 * steal / total, 1)
        task = sum(w.cores[role][3] for w in windows if role in w.cores)
        mine = sum(w.ours_cpu_s.get(role, 0.0) for w in windows)
        out[f"{role}_core_foreign_pct"] = _foreign_pct(task, total, mine)
    out["windows"] = [asdict(w) for w in windows]
    return out


def derive(
    phases: dict[str, dict[str, Any]], worker_cpus: list[int], s: Settings
) -> dict[str, Any]:
    c1, cn, st = (
        "passthrough c=1",
        f"passthrough c={s.concurrency}",
        f"stream c={s.stream_concurrency}",
    )
    out: dict[str, Any] = {}
    for label in worker_cpus:
        entry: dict[str, Any] = {}
        for sampling in (0, 100):
            key = f"sampling{sampling}@cpu{label}"
            for phase in (cn, st):
                off, on = phases[phase]["off"], phases[phase][key]
                ratio = on["latency"]["rps"] / off["latency"]["rps"]
                rounds = [
                    a / b for a, b in zip(on["rps_per_round"], off["rps_per_round"], strict=True)
                ]
                entry[f"{phase} sampling{sampling}/off"] = {
                    "ratio": round(ratio, 3),
                    "per_round": [round(x, 3) for x in rounds],
                    "median_round": round(statistics.median(rounds), 3),
                }
            off1, on1 = phases[c1]["off"]["latency"], phases[c1][key]["latency"]
            entry[f"c=1 sampling{sampling} added p50 ms"] = round(on1["p50_ms"] - off1["p50_ms"], 3)
            entry[f"c=1 sampling{sampling} added p99 ms"] = round(on1["p99_ms"] - off1["p99_ms"], 3)
            # What the proxy's core alone allows, from CPU per request: less noisy than req/s
            # when other people's processes take part of that core.
            off_us = phases[cn]["off"]["proxy_cpu_us_per_request"]
            on_cn = phases[cn][key]
            core_us = on_cn["proxy_cpu_us_per_request"]
            if label == 1:
                core_us += on_cn["worker_cpu_us_per_request"] or 0
            entry[f"{cn} sampling{sampling} proxy-core CPU ratio"] = round(off_us / core_us, 3)
            # The same for both cores: the busier one bounds throughput, and with the worker
            # on CPU 0 that may be CPU 0 (load generator + upstream + worker).
            off_bound = max(off_us, phases[cn]["off"]["driver_cpu_us_per_request"])
            shared_us = on_cn["driver_cpu_us_per_request"]
            if label == 0:
                shared_us += on_cn["worker_cpu_us_per_request"] or 0
            entry[f"{cn} sampling{sampling} CPU model"] = {
                "proxy_core_us_per_req": core_us,
                "shared_core_us_per_req": shared_us,
                "off_proxy_core_us_per_req": off_us,
                "off_shared_core_us_per_req": phases[cn]["off"]["driver_cpu_us_per_request"],
                "ratio": round(off_bound / max(core_us, shared_us), 3),
            }
            for phase in (c1, cn, st):
                on_p = phases[phase][key]
                entry[f"{phase} sampling{sampling} proxy extra CPU us/req"] = (
                    on_p["proxy_cpu_us_per_request"]
                    - phases[phase]["off"]["proxy_cpu_us_per_request"]
                )
                entry[f"{phase} sampling{sampling} worker CPU us/req"] = on_p[
                    "worker_cpu_us_per_request"
                ]
        loss = 1 - entry[f"{cn} sampling100/off"]["ratio"]
        entry["loss_at_100pct_c64"] = round(loss, 3)
        entry["goal_loss_at_most_10pct"] = loss <= GOAL_MAX_LOSS
        out[f"worker on cpu{label}"] = entry
    return out


def markdown(
    phases: dict[str, dict[str, Any]],
    summary: dict[str, Any],
    stores: dict[str, Any],
    s: Settings,
    load: dict[str, Any] | None = None,
) -> str:
    lines = []
    if load:
        by_phase = ", ".join(f"{label}: {mode}" for label, mode in load["by_phase"].items())
        version = f" ({load['wrk_version']})" if load.get("wrk_version") else ""
        lines += [
            f"Load: `{load['mode']}`{version}; {by_phase}. Upstream: {load['upstream']}.",
            "",
        ]
    lines += [
        "| phase | load | scenario | requests | req/s | p50 ms | p99 ms | errors"
        " | proxy CPU µs/req (loop + other threads)"
        " | worker CPU µs/req | load side CPU µs/req (generator + upstream)"
        " | CPU0 busy / foreign % | CPU1 busy / foreign / steal % | worker drain s (max) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, entry in phases.items():
        for key, rep in entry.items():
            st = rep["latency"]
            worker = rep["worker_cpu_us_per_request"]
            drain = rep["worker_drain_s_max"]
            lines.append(
                f"| {label} | {rep['load']} | {key} | {st['requests']} | {st['rps']:.0f} | "
                f"{st['p50_ms']:.3f} | {st['p99_ms']:.3f} | {st['errors']} | "
                f"{rep['proxy_cpu_us_per_request']} "
                f"({rep['proxy_main_thread_us_per_request']} + "
                f"{rep['proxy_other_threads_us_per_request']}) | "
                f"{'-' if worker is None else worker} | {rep['driver_cpu_us_per_request']} "
                f"({rep['load_generator_cpu_us_per_request']} + "
                f"{rep['upstream_cpu_us_per_request']}) | {rep['shared_core_busy_pct']} / "
                f"{rep['shared_core_foreign_pct']} | {rep['proxy_core_busy_pct']} / "
                f"{rep['proxy_core_foreign_pct']} / {rep['proxy_core_steal_pct']} | "
                f"{'-' if drain is None else drain} |"
            )
    cn, stl = f"passthrough c={s.concurrency}", f"stream c={s.stream_concurrency}"
    lines += [
        "",
        f"| worker placement | c={s.concurrency} s100/off (per round) | c={s.concurrency} s0/off"
        f" | stream c={s.stream_concurrency} s100/off | s0/off | c=1 s100 added p50 / p99 ms"
        f" | proxy extra CPU µs/req s100 (c={s.concurrency}) | worker CPU µs/req s100 / s0"
        f" | proxy-core CPU ratio s100 | CPU model s100/off (CPU1 / CPU0 µs/req)"
        f" | loss ≤ {GOAL_MAX_LOSS:.0%} (req/s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    yes = {True: "**met**", False: "**not met**"}
    for placement, e in summary.items():
        r100, r0 = e[f"{cn} sampling100/off"], e[f"{cn} sampling0/off"]
        model = e[f"{cn} sampling100 CPU model"]
        rounds = ", ".join(f"{x:.0%}" for x in r100["per_round"])
        lines.append(
            f"| {placement} | {r100['ratio']:.1%} ({rounds}) | {r0['ratio']:.1%} | "
            f"{e[f'{stl} sampling100/off']['ratio']:.1%} | "
            f"{e[f'{stl} sampling0/off']['ratio']:.1%} | "
            f"{e['c=1 sampling100 added p50 ms']:.3f} / {e['c=1 sampling100 added p99 ms']:.3f} | "
            f"{e[f'{cn} sampling100 proxy extra CPU us/req']} | "
            f"{e[f'{cn} sampling100 worker CPU us/req']} / "
            f"{e[f'{cn} sampling0 worker CPU us/req']} | "
            f"{e[f'{cn} sampling100 proxy-core CPU ratio']:.1%} | "
            f"{model['ratio']:.1%} ({model['proxy_core_us_per_req']} / "
            f"{model['shared_core_us_per_req']}) | "
            f"{yes[e['goal_loss_at_most_10pct']]} ({e['loss_at_100pct_c64']:.1%} loss) |"
        )
    if summary:
        model = next(iter(summary.values()))[f"{cn} sampling100 CPU model"]
        lines += [
            "",
            f"CPU model: off needs {model['off_proxy_core_us_per_req']} µs/req on CPU1 (proxy)"
            f" and {model['off_shared_core_us_per_req']} µs/req on CPU0 (load generator +"
            " upstream); the core needing more bounds throughput.",
        ]
    lines += [
        "",
        "| store | requests sent | rows stored | sink sent | sink dropped | worker records"
        " / sampled / stored / store errors | store MB | verdict |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for key, v in stores.items():
        w = v.get("worker_stats") or {}
        lines.append(
            f"| {key} | {v['requests_sent']} | {v['rows']} | {v['sink_sent']} | "
            f"{v['sink_dropped']} | {w.get('records')} / {w.get('sampled')} / {w.get('stored')}"
            f" / {w.get('store_errors')} | {v['store_mb']} | {v['verdict']} |"
        )
    return "\n".join(lines)


def count_rows(path: str) -> tuple[int | None, str | None, str]:
    """(rows, error, how): TraceStore.count(), or a plain SQL count if the module will not
    import (proxy/ is being edited while benchmarks run: a broken import must not cost the
    run its results)."""
    try:
        from proxy.telemetry.store import TraceStore
    except Exception as exc:
        import sqlite3

        how = f"sqlite3 (TraceStore import failed: {type(exc).__name__}: {exc})"
        try:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return conn.execute("SELECT count(*) FROM requests").fetchone()[0], None, how
        except sqlite3.Error as sql_exc:
            return None, f"{type(sql_exc).__name__}: {sql_exc}", how
    try:
        with TraceStore.open(path) as store:
            return store.count(), None, "TraceStore.count()"
    except Exception as exc:  # a store that cannot be read is a finding, not a crash
        return None, f"{type(exc).__name__}: {exc}", "TraceStore.count()"


def verify_store(proxy: Proxy) -> dict[str, Any]:
    scenario, report = proxy.scenario, proxy.report
    assert scenario.store_path is not None
    rows, error, how = count_rows(scenario.store_path)
    size = sum(
        p.stat().st_size
        for p in Path(scenario.store_path).parent.glob(Path(scenario.store_path).name + "*")
    )
    expected = proxy.sent if scenario.sampling == 100 else 0
    dropped = report.get("sink_dropped")
    problems = []
    if error:
        problems.append(error)
    if rows != expected:
        problems.append(f"{rows} rows, expected {expected}")
    if dropped:
        problems.append(f"sink dropped {dropped}")
    if report.get("sink_sent") != proxy.sent:
        problems.append(f"sink sent {report.get('sink_sent')} of {proxy.sent} records")
    stats = report.get("worker_stats") or {}
    if stats.get("dropped") or stats.get("store_errors"):
        problems.append(
            f"worker dropped {stats.get('dropped')}, errors {stats.get('store_errors')}"
        )
    affinity_end = report.get("worker_affinity_at_end") or {}
    wrong_cpu = {
        task: cpus
        for task, cpus in [*proxy.affinity_start.items(), *affinity_end.items()]
        if cpus != [scenario.worker_cpu]
    }
    if wrong_cpu:
        problems.append(f"worker threads off cpu{scenario.worker_cpu}: {wrong_cpu}")
    return {
        "requests_sent": proxy.sent,
        "rows": rows,
        "expected_rows": expected,
        "sink_sent": report.get("sink_sent"),
        "sink_dropped": dropped,
        "worker_stats": report.get("worker_stats"),
        "worker_affinity_at_start": proxy.affinity_start,
        "worker_affinity_at_end": affinity_end,
        "counted_with": how,
        "store_mb": round(size / 1e6, 1),
        "verdict": "ok" if not problems else "PROBLEM: " + "; ".join(problems),
    }


# --------------------------------------------------------------------------- profiles


def summarize_profiles(directory: Path, keys: list[str], top: int = 12) -> dict[str, Any]:
    """Collapsed py-spy stacks per scenario, split by thread.

    What matters is the event loop's thread (MainThread): telemetry frames there are time
    the requests wait for. The sink's sender thread ("plano-telemetry") competes for the
    interpreter lock; its true CPU is better read from /proc (other-threads CPU above),
    as py-spy may count its timed waits as busy.
    """
    out: dict[str, Any] = {}
    for key in keys:
        by_thread: Counter[str] = Counter()
        loop_telemetry = 0
        inclusive: Counter[str] = Counter()  # telemetry frames on the event loop's thread
        self_frames: Counter[str] = Counter()  # leaf frames on the event loop's thread
        for path in directory.glob(f"{key.replace('@', '_')}_r*.txt"):
            for line in path.read_text().splitlines():
                stack, _, count_text = line.rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                n = int(count_text)
                thread, *frames = stack.split(";")
                thread = thread.split("): ", 1)[-1]  # drop the thread id: names add up
                by_thread[thread] += n
                if thread != "MainThread" or not frames:
                    continue
                self_frames[frames[-1]] += n
                marked = {f for f in frames if _is_telemetry(f)}
                if marked:
                    loop_telemetry += n
                for frame in marked:  # inclusive: each frame once per stack
                    inclusive[frame] += n
        loop = by_thread["MainThread"]
        total = sum(by_thread.values())

        def pct(n: int, of: int) -> float | None:
            return round(100 * n / of, 2) if of else None

        out[key] = {
            "samples": total,
            "threads_pct_of_all": {t: pct(n, total) for t, n in by_thread.most_common(6)},
            "loop_samples": loop,
            "loop_telemetry_inclusive_pct": pct(loop_telemetry, loop),
            "loop_top_telemetry_frames_pct": [
                (frame, pct(n, loop)) for frame, n in inclusive.most_common(top)
            ],
            "loop_top_self_frames_pct": [
                (frame, pct(n, loop)) for frame, n in self_frames.most_common(top)
            ],
        }
    return out


def summarize_worker_profiles(directory: Path, keys: list[str], top: int = 15) -> dict[str, Any]:
    """Where the worker's time goes: the stacks under TelemetryProcessor.process (its real
    work; samples of threads waiting for a batch are left out)."""
    out: dict[str, Any] = {}
    for key in keys:
        inclusive: Counter[str] = Counter()
        leaves: Counter[str] = Counter()
        work = total = 0
        for path in directory.glob(f"{key.replace('@', '_')}_worker_r*.txt"):
            for line in path.read_text().splitlines():
                stack, _, count_text = line.rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                n = int(count_text)
                frames = stack.split(";")[1:]
                total += n
                at = next(
                    (i for i, f in enumerate(frames) if f.startswith("TelemetryProcessor.process")),
                    None,
                )
                if at is None:
                    continue
                work += n
                leaves[frames[-1]] += n
                for frame in set(frames[at + 1 :]):
                    inclusive[frame] += n
        if not total:
            continue
        out[key] = {
            "samples": total,
            "in_process_samples": work,
            "top_inclusive_pct_of_process": [
                (f, round(100 * n / work, 1)) for f, n in inclusive.most_common(top)
            ]
            if work
            else [],
            "top_self_pct_of_process": [
                (f, round(100 * n / work, 1)) for f, n in leaves.most_common(top)
            ]
            if work
            else [],
        }
    return out


_TELEMETRY_MARKERS = ("proxy/telemetry/", "keep_response_chunk", "epoch_ns (")


def _is_telemetry(frame: str) -> bool:
    return any(marker in frame for marker in _TELEMETRY_MARKERS)


# --------------------------------------------------------------------------- main


def tree_digest() -> str:
    """A digest of proxy/'s Python files: other people edit them while benchmarks run, so
    the result records which code it measured, and whether it changed mid-run."""
    import hashlib

    root = Path(__file__).resolve().parent.parent / "proxy"
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def stop_proxy(proxy: Proxy) -> None:
    """Stop, and collect what the proxy knew about its telemetry after the flush."""
    with contextlib.suppress(OSError):
        proxy.child.conn.send("stop")
    with contextlib.suppress(EOFError, OSError):
        if proxy.child.conn.poll(120):
            proxy.report = proxy.child.conn.recv()
    proxy.child.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="write results here, not to stdout")
    parser.add_argument(
        "--worker-cpu",
        type=int,
        choices=(0, 1),
        action="append",
        help="0: the load generator's core; 1: the proxy's core (default: both)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="profile the proxies with py-spy in the full-concurrency windows (this perturbs "
        "the throughput numbers: use a separate run)",
    )
    parser.add_argument(
        "--load",
        choices=("wrk", "python"),
        default="wrk",
        help="what drives the c=64 and stream phases: wrk (default) or the Python generator",
    )
    parser.add_argument(
        "--upstream",
        choices=("lean", "aiohttp"),
        help="the stand-in upstream: lean (bench/lean_upstream.py; default with wrk) or "
        "aiohttp (bench/proxy_overhead.py's; default with --load python)",
    )
    parser.add_argument("--keep-store", action="store_true", help="keep the temp trace stores")
    args = parser.parse_args()
    upstream_kind = args.upstream or ("lean" if args.load == "wrk" else "aiohttp")
    version = None
    if args.load == "wrk":
        version = wrk_version()
        if shutil.which("wrk") is None or version is None:
            raise SystemExit("--load wrk needs wrk: apt-get install -y wrk (or use --load python)")
        if shutil.which("taskset") is None:
            raise SystemExit("--load wrk needs taskset (util-linux)")
    settings = QUICK if args.quick else FULL
    worker_cpus = sorted(set(args.worker_cpu or [0, 1]))
    shared_cpu, proxy_cpu = po.cpu_plan(True)
    if shared_cpu is None or proxy_cpu is None:
        raise SystemExit("needs 2 CPUs to pin the load generator and the proxy apart")
    placement = {0: shared_cpu, 1: proxy_cpu}
    py_spy_dir = Path(args.py_spy).resolve() if args.py_spy else None
    if py_spy_dir is not None:
        py_spy_dir.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix="plano-tracing-bench-"))
    scenarios = scenarios_for(worker_cpus, placement, tmp)
    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited loop or sockets
    upstream: po.Child | None = None
    proxies: dict[str, Proxy] = {}
    load = {"start": os.getloadavg()}
    digest_start = tree_digest()
    cpu_before = po.cpu_times()
    started = time.time()
    bench: Bench | None = None
    try:
        print("starting upstream and proxies ...", file=sys.stderr, flush=True)
        if upstream_kind == "lean":
            upstream, upstream_port = po.start_child(
                ctx, lean_upstream.main, shared_cpu, name="upstream"
            )
        else:
            upstream, upstream_port = po.start_child(
                ctx, po.upstream_main, shared_cpu, 0.0, name="upstream"
            )
        for scenario in scenarios:
            child, hello = po.start_child(
                ctx, proxy_main, proxy_cpu, upstream_port, scenario, name=f"proxy {scenario.key}"
            )
            proxies[scenario.key] = Proxy(
                scenario,
                child,
                hello["port"],
                hello["worker_pid"],
                hello["admin_port"],
                hello["worker_affinity_at_start"],
            )
        os.sched_setaffinity(0, {shared_cpu})
        worker_cpu_at_start = {k: process_cpu_s(p.worker_pid) for k, p in proxies.items()}
        ours = {
            "shared": [os.getpid(), upstream.process.pid or 0],
            "proxy": [p.pid for p in proxies.values()],
        }
        for p in proxies.values():
            if p.worker_pid is not None:
                ours["shared" if p.scenario.worker_cpu == shared_cpu else "proxy"].append(
                    p.worker_pid
                )
        cores = {"shared": shared_cpu, "proxy": proxy_cpu}
        wrk = Wrk(shared_cpu, tmp) if args.load == "wrk" else None
        bench = Bench(settings, proxies, cores, ours, py_spy_dir, wrk)
        asyncio.run(bench.run())
        worker_cpu_total = {
            k: None
            if p.worker_pid is None
            else round((process_cpu_s(p.worker_pid) or 0) - (worker_cpu_at_start[k] or 0), 3)
            for k, p in proxies.items()
        }
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        print("stopping (telemetry flushes) ...", file=sys.stderr, flush=True)
        for proxy in proxies.values():
            stop_proxy(proxy)
        if upstream is not None:
            upstream.stop()
    load["end"] = os.getloadavg()
    cpu_share = po.cpu_split(cpu_before, po.cpu_times())
    assert bench is not None

    stores = {
        key: verify_store(p) for key, p in proxies.items() if p.scenario.store_path is not None
    }
    if not args.keep_store:
        shutil.rmtree(tmp, ignore_errors=True)
    phases = {
        label: {key: phase_report(sample, bench.windows[label][key]) for key, sample in s.items()}
        for label, s in bench.samples.items()
    }
    summary = derive(phases, worker_cpus, settings)
    load_info: dict[str, Any] = {
        "mode": args.load,
        "wrk_version": version,
        "wrk_commands": bench.wrk.commands if bench.wrk is not None else None,
        "upstream": upstream_kind,
        "by_phase": {label: next(iter(v.values()))["load"] for label, v in phases.items() if v},
        # CPU 0's load side per request (generator + upstream), per phase and scenario: what is
        # left of CPU 0 for the telemetry worker when it is placed there.
        "load_side_cpu_us_per_request": {
            label: {
                key: {
                    "generator": rep["load_generator_cpu_us_per_request"],
                    "upstream": rep["upstream_cpu_us_per_request"],
                    "total": rep["driver_cpu_us_per_request"],
                    **(
                        {"wrk": rep["wrk_cpu_us_per_request"]}
                        if "wrk_cpu_us_per_request" in rep
                        else {}
                    ),
                }
                for key, rep in v.items()
            }
            for label, v in phases.items()
        },
    }
    profiles = None
    if py_spy_dir is not None:
        profiles = {
            "proxy": summarize_profiles(py_spy_dir, list(proxies)),
            "worker": summarize_worker_profiles(py_spy_dir, list(proxies)),
        }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "commit": po.git_commit(),
        "proxy_tree_digest": {"start": digest_start, "end": tree_digest()},
        "machine": po.machine(),
        "load_average_1_5_15": {k: [round(x, 2) for x in v] for k, v in load.items()},
        "cpu_share_during_run": cpu_share,
        "placement": {
            "load_generator_and_upstream_cpu": shared_cpu,
            "proxy_cpu": proxy_cpu,
            "worker_cpu_by_scenario": {s.key: s.worker_cpu for s in scenarios},
        },
        "settings": {**asdict(settings), "max_traces": MAX_TRACES},
        "load": load_info,
        "profiled_with_py_spy": py_spy_dir is not None,
        "unsettled_windows": bench.unsettled,
        # Worker CPU over the whole measuring phase / every request it was sent.
        "worker_cpu_total_s": worker_cpu_total,
        "worker_cpu_us_per_request_whole_run": {
            k: round(1e6 * v / proxies[k].sent) if v is not None and proxies[k].sent else None
            for k, v in worker_cpu_total.items()
        },
        "phases": phases,
        "summary": summary,
        "stores": stores,
        "py_spy": profiles,
        "store_dir": str(tmp) if args.keep_store else None,
    }
    print(markdown(phases, summary, stores, settings, load_info))
    if result["proxy_tree_digest"]["start"] != result["proxy_tree_digest"]["end"]:
        print("\nwarning: proxy/ changed during the run (someone edited it)")
    if bench.unsettled:
        print(f"\nwarning: worker still busy after windows: {bench.unsettled}")
    if profiles:
        print("\npy-spy (proxy and worker processes):")
        print(json.dumps(profiles, indent=1))
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print()
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
