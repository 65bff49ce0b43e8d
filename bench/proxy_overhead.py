"""What the gateway adds over calling a fast local upstream directly.

Usage: python bench/proxy_overhead.py [--quick] [--json PATH] [--chunk-delay-ms MS]
           [--access-log] [--no-relay] [--no-pin] [--profile-proxy PATH]

Three processes, all on 127.0.0.1:
- a stand-in upstream (aiohttp) answering OpenAI /v1/chat/completions (JSON or ~20 SSE
  chunks) and Anthropic /v1/messages instantly, with canned bodies;
- the real ProxyServer, with one OpenAI provider pointing at the stand-in;
- this process, the load generator (aiohttp client, pooled connector).
The proxy's process also serves a bare aiohttp relay (forward the bytes, nothing else) on a
second port: the floor any aiohttp-based gateway pays, measured on the same core, so the
proxy's own cost can be told apart from aiohttp's (--no-relay skips it).

CPU placement (2-core machine): the load generator and the upstream share one core and the
proxy gets the other to itself. So the direct and proxied runs give the non-proxy work the
same single core, and the proxy gets what it would get in production (its own core, with
client and provider elsewhere). At concurrency 64 the throughput ratio therefore compares
the proxy's CPU cost per request with that of an aiohttp client plus an aiohttp server.

Direct and proxied runs alternate in rounds, so drift of a shared VM hits both alike.
The proxy runs with logging unconfigured (no access log, like `plano up --quiet`) unless
--access-log is given. Child processes stop with the parent: on normal exit, on Ctrl-C,
and when the parent dies (they watch their pipe to it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson

MODEL = "gpt-4o-mini"
PROMPT = "Say hello in one short sentence."
STREAM_CONTENT_CHUNKS = 20
REQUEST_TIMEOUT_S = 10.0
_JSON = "application/json"
GOAL_ADDED_P50_MS = 1.0
GOAL_THROUGHPUT_RATIO = 0.70


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class Settings:
    c1_requests: int  # per target, at concurrency 1
    c1_warmup: int
    c64_seconds: float  # per target, at concurrency 64
    c64_warmup_s: float
    stream_requests: int
    stream_warmup: int
    rounds: int  # direct/proxy alternations each total is split into
    concurrency: int = 64
    budget_s: float = 300.0  # hard bound on the measuring phase


FULL = Settings(
    c1_requests=2000,
    c1_warmup=200,
    c64_seconds=10.0,
    c64_warmup_s=1.0,
    stream_requests=300,
    stream_warmup=30,
    rounds=4,
)
QUICK = Settings(
    c1_requests=200,
    c1_warmup=30,
    c64_seconds=1.0,
    c64_warmup_s=0.3,
    stream_requests=40,
    stream_warmup=5,
    rounds=2,
    budget_s=25.0,
)


# --------------------------------------------------------------------------- canned bodies


def _openai_request(stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


def _anthropic_request() -> bytes:
    return orjson.dumps(
        {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": PROMPT}]}
    )


_CREATED = 1_767_225_600
_USAGE = {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
CHAT_COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench0000000000000000",
        "object": "chat.completion",
        "created": _CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! Nice to meet you today."},
                "finish_reason": "stop",
            }
        ],
        "usage": _USAGE,
    }
)
ANTHROPIC_MESSAGE = orjson.dumps(
    {
        "id": "msg_bench0000000000000000",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Hello! Nice to meet you today."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 9},
    }
)


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    payload: dict[str, Any] = {
        "id": "chatcmpl-bench0000000000000000",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        if delta or finish
        else [],
    }
    if usage is not None:
        payload["usage"] = usage
    return b"data: " + orjson.dumps(payload) + b"\n\n"


ROLE_CHUNK = _chunk({"role": "assistant", "content": ""})
CONTENT_CHUNKS = [_chunk({"content": f" tok{i}"}) for i in range(STREAM_CONTENT_CHUNKS)]
FINISH_CHUNK = _chunk({}, finish="stop")
USAGE_CHUNK = _chunk({}, usage=_USAGE)
DONE = b"data: [DONE]\n\n"
# What a client that did not ask for usage receives, direct or through the proxy.
EXPECTED_STREAM_EVENTS = 1 + STREAM_CONTENT_CHUNKS + 1 + 1


# --------------------------------------------------------------------------- child processes


def _child_setup(cpu: int | None) -> None:
    # The parent owns Ctrl-C: it stops the children in order, so they ignore SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


async def _until_parent_says_stop(conn: Connection) -> None:
    """Returns on SIGTERM, on any message from the parent, or when the parent is gone."""
    from proxy.server.worker_main import until_parent_says_stop

    await until_parent_says_stop(conn)


def upstream_main(conn: Connection, cpu: int | None, chunk_delay_s: float) -> None:
    _child_setup(cpu)
    asyncio.run(_upstream(conn, chunk_delay_s))


async def _upstream(conn: Connection, chunk_delay_s: float) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if not body.get("stream"):
            return web.Response(body=CHAT_COMPLETION, content_type="application/json")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        # The first token goes out with the headers: TTFT is then pure transport + relay.
        await response.write(ROLE_CHUNK + CONTENT_CHUNKS[0])
        for chunk in CONTENT_CHUNKS[1:]:
            if chunk_delay_s:
                await asyncio.sleep(chunk_delay_s)
            await response.write(chunk)
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        await response.write(FINISH_CHUNK + (USAGE_CHUNK if wants_usage else b"") + DONE)
        await response.write_eof()
        return response

    async def messages(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANTHROPIC_MESSAGE, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    conn.send(port)
    try:
        await _until_parent_says_stop(conn)
    finally:
        await runner.cleanup()


def proxy_main(
    conn: Connection,
    cpu: int | None,
    upstream_port: int,
    access_log: bool,
    profile_path: str | None,
    relay: bool,
) -> None:
    _child_setup(cpu)
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        # The same event loop `plano up` runs on.
        from proxy.server.event_loop import run

        run(_proxy(conn, upstream_port, access_log, relay))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)


async def _proxy(conn: Connection, upstream_port: int, access_log: bool, relay: bool) -> None:
    import dataclasses
    import textwrap

    from proxy.config import Mode, check_text
    from proxy.server.runner import ProxyServer

    if access_log:
        # What `plano up` (without --quiet) does, with its stderr sent to /dev/null.
        from proxy.telemetry.batch_log import configure_logging

        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the process's lifetime
        configure_logging(sys.stderr, True)

    result = check_text(
        textwrap.dedent(
            f"""\
            version: v0.4.0
            listeners: [{{name: bench, type: model, port: 12000}}]
            model_providers:
              - model: openai/{MODEL}
                base_url: http://127.0.0.1:{upstream_port}/v1
                access_key: x
                default: true
            """
        ),
        env={},
        mode=Mode.SERVE,
    )
    if not result.ok:
        raise SystemExit(f"bench config rejected: {[p.message for p in result.errors]}")
    listeners = tuple(
        dataclasses.replace(lst, port=0, address="127.0.0.1") for lst in result.config.listeners
    )
    server = ProxyServer(
        dataclasses.replace(result.config, listeners=listeners), shutdown_timeout=1.0
    )
    await server.start()
    # Same process and core as the proxy; idle while the proxy is measured and vice versa.
    floor = await _start_relay(upstream_port) if relay else None
    conn.send((server.bound[0].port, floor[1] if floor else None))
    try:
        await _until_parent_says_stop(conn)
    finally:
        await server.stop()
        if floor:
            await floor[0].cleanup()


async def _start_relay(upstream_port: int) -> tuple[Any, int]:
    """The least an aiohttp relay can do: forward bytes, stream chunks as they come.

    Measured next to the proxy, it separates the cost of aiohttp's client and server from
    the cost of the gateway's own work.
    """
    from aiohttp import web

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=256),
        skip_auto_headers=("User-Agent",),
    )
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}

    async def forward(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        url = f"http://127.0.0.1:{upstream_port}{request.path}"
        async with session.post(url, data=raw, headers=headers) as upstream:
            if not orjson.loads(raw).get("stream"):
                body = await upstream.read()
                return web.Response(body=body, status=upstream.status, content_type=_JSON)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def close(_: web.Application) -> None:
        await session.close()

    app = web.Application()
    app.router.add_post("/v1/chat/completions", forward)
    app.on_cleanup.append(close)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@dataclass
class Child:
    process: mp.process.BaseProcess
    conn: Connection

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(3)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(3)
        self.conn.close()


def start_child(ctx: Any, target: Callable[..., None], *args: Any, name: str) -> tuple[Child, int]:
    parent_end, child_end = ctx.Pipe()
    process = ctx.Process(target=target, args=(child_end, *args), name=name, daemon=True)
    process.start()
    child_end.close()  # else the child would never see EOF when this process dies
    child = Child(process, parent_end)
    try:
        if not parent_end.poll(30):
            raise RuntimeError(f"{name} did not start within 30 s")
        port = parent_end.recv()
    except (EOFError, RuntimeError):
        child.stop()
        raise RuntimeError(f"{name} failed to start (exit code {process.exitcode})") from None
    return child, port


# --------------------------------------------------------------------------- load generation


@dataclass(slots=True)
class Stats:
    requests: int
    errors: int
    elapsed_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


def _percentile(ordered: list[float], q: float) -> float:
    # Nearest rank: a sample that was actually observed, not an interpolation.
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def summarize(latencies_s: list[float], errors: int, elapsed_s: float) -> Stats:
    ordered = sorted(latencies_s)
    if not ordered:
        return Stats(0, errors, elapsed_s, 0.0, math.nan, math.nan, math.nan, math.nan)
    ms = [x * 1000 for x in ordered]
    return Stats(
        requests=len(ms),
        errors=errors,
        elapsed_s=round(elapsed_s, 3),
        rps=round(len(ms) / elapsed_s, 1),
        p50_ms=round(_percentile(ms, 0.50), 3),
        p90_ms=round(_percentile(ms, 0.90), 3),
        p99_ms=round(_percentile(ms, 0.99), 3),
        mean_ms=round(sum(ms) / len(ms), 3),
    )


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed_s: float = 0.0
    first_error: str | None = None

    def error(self, message: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or message


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    body: bytes
    headers: dict[str, str]
    stream: bool = False


async def one_request(session: aiohttp.ClientSession, target: Target, sample: Sample) -> None:
    started = time.perf_counter()
    try:
        async with session.post(target.url, data=target.body, headers=target.headers) as resp:
            if resp.status != 200:
                sample.error(f"{target.name}: HTTP {resp.status}: {(await resp.read())[:200]!r}")
                return
            if not target.stream:
                await resp.read()
                sample.latencies.append(time.perf_counter() - started)
                return
            first = None
            events = 0
            last = b""
            async for line in resp.content:
                if not line.startswith(b"data: "):
                    continue
                events += 1
                last = line
                if first is None and line.startswith(b"data: {"):
                    choices = orjson.loads(line[6:]).get("choices") or ()
                    if choices and (choices[0].get("delta") or {}).get("content"):
                        first = time.perf_counter()
            done = time.perf_counter()
    except (aiohttp.ClientError, TimeoutError) as exc:
        sample.error(f"{target.name}: {type(exc).__name__}: {exc}")
        return
    if first is None or events != EXPECTED_STREAM_EVENTS or last.strip() != DONE.strip():
        sample.error(f"{target.name}: bad stream ({events} events, first token {first})")
        return
    sample.ttfts.append(first - started)
    sample.latencies.append(done - started)


async def run_count(session: aiohttp.ClientSession, target: Target, n: int, sample: Sample) -> None:
    """n requests back to back, one at a time."""
    started = time.perf_counter()
    for _ in range(n):
        await one_request(session, target, sample)
    sample.elapsed_s += time.perf_counter() - started


async def run_for(
    session: aiohttp.ClientSession, target: Target, seconds: float, concurrency: int, sample: Sample
) -> None:
    """`concurrency` closed-loop workers until `seconds` have passed."""
    started = time.perf_counter()
    deadline = started + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            await one_request(session, target, sample)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.elapsed_s += time.perf_counter() - started


class Sessions:
    """One pooled client per (target, concurrency), kept warm across rounds."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, int], aiohttp.ClientSession] = {}

    def get(self, target: Target, concurrency: int) -> aiohttp.ClientSession:
        key = (target.name, concurrency)
        if key not in self._sessions:
            self._sessions[key] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
                skip_auto_headers=("User-Agent",),
            )
        return self._sessions[key]

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()


Runner = Callable[[aiohttp.ClientSession, Target, Sample], Awaitable[None]]


async def compare(
    sessions: Sessions,
    targets: dict[str, Target],
    concurrency: int,
    warmup: Runner,
    measure: Runner,
    rounds: int,
) -> dict[str, Sample]:
    """Warm every target, then alternate rounds between them."""
    for target in targets.values():
        throwaway = Sample()
        await warmup(sessions.get(target, concurrency), target, throwaway)
        if throwaway.errors:
            raise RuntimeError(f"warm-up failed: {throwaway.first_error}")
    samples = {key: Sample() for key in targets}
    for _ in range(rounds):
        for key, target in targets.items():
            await measure(sessions.get(target, concurrency), target, samples[key])
    for sample in samples.values():
        if sample.errors:
            print(f"warning: {sample.errors} errors, first: {sample.first_error}", file=sys.stderr)
    return samples


async def measure_all(
    settings: Settings, upstream_url: str, proxy_url: str, relay_url: str | None
) -> dict[str, Any]:
    oa_headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    an_headers = {
        "Content-Type": "application/json",
        "x-api-key": "x",
        "anthropic-version": "2023-06-01",
    }
    chat, chat_stream = _openai_request(False), _openai_request(True)
    hosts = {"direct": upstream_url, "proxy": proxy_url}
    if relay_url:
        hosts["relay"] = relay_url
    targets: dict[str, dict[str, Target]] = {
        "chat": {
            key: Target(f"{key}-chat", f"{url}/v1/chat/completions", chat, oa_headers)
            for key, url in hosts.items()
        },
        "stream": {
            key: Target(
                f"{key}-stream", f"{url}/v1/chat/completions", chat_stream, oa_headers, stream=True
            )
            for key, url in hosts.items()
        },
        # The direct baseline for an Anthropic client is an Anthropic-shaped upstream.
        "translated": {
            key: Target(
                f"{key}-messages", f"{hosts[key]}/v1/messages", _anthropic_request(), an_headers
            )
            for key in ("direct", "proxy")
        },
    }
    s = settings
    per_round = max(1, s.c1_requests // s.rounds)
    stream_per_round = max(1, s.stream_requests // s.rounds)
    c64_rounds = s.rounds
    sessions = Sessions()
    results: dict[str, dict[str, Sample]] = {}

    def count(n: int) -> Runner:
        return lambda session, target, sample: run_count(session, target, n, sample)

    def timed(seconds: float) -> Runner:
        return lambda session, target, sample: run_for(
            session, target, seconds, s.concurrency, sample
        )

    try:
        async with asyncio.timeout(s.budget_s):
            plan = [
                ("passthrough c=1", "chat", 1, count(s.c1_warmup), count(per_round), s.rounds),
                (
                    f"passthrough c={s.concurrency}",
                    "chat",
                    s.concurrency,
                    timed(s.c64_warmup_s),
                    timed(s.c64_seconds / c64_rounds),
                    c64_rounds,
                ),
                (
                    "stream c=1",
                    "stream",
                    1,
                    count(s.stream_warmup),
                    count(stream_per_round),
                    s.rounds,
                ),
                (
                    "translated c=1",
                    "translated",
                    1,
                    count(s.c1_warmup),
                    count(per_round),
                    s.rounds,
                ),
            ]
            for label, kind, concurrency, warmup, measure, rounds in plan:
                print(f"  {label} ...", file=sys.stderr, flush=True)
                results[label] = await compare(
                    sessions, targets[kind], concurrency, warmup, measure, rounds
                )
    finally:
        await sessions.close()
    return {label: _report(samples) for label, samples in results.items()}


def _report(samples: dict[str, Sample]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sample in samples.items():
        entry = {"latency": asdict(summarize(sample.latencies, sample.errors, sample.elapsed_s))}
        if sample.ttfts:
            entry["ttft"] = asdict(summarize(sample.ttfts, sample.errors, sample.elapsed_s))
        out[key] = entry
    return out


# --------------------------------------------------------------------------- report


def derive(scenarios: dict[str, Any], concurrency: int) -> dict[str, Any]:
    def lat(label: str, key: str) -> dict[str, float]:
        return scenarios[label][key]["latency"]

    c1 = "passthrough c=1"
    cN = f"passthrough c={concurrency}"
    added_p50 = lat(c1, "proxy")["p50_ms"] - lat(c1, "direct")["p50_ms"]
    added_p99 = lat(c1, "proxy")["p99_ms"] - lat(c1, "direct")["p99_ms"]
    ratio = lat(cN, "proxy")["rps"] / lat(cN, "direct")["rps"]
    ttft_d = scenarios["stream c=1"]["direct"]["ttft"]
    ttft_p = scenarios["stream c=1"]["proxy"]["ttft"]
    translated_p50 = (
        lat("translated c=1", "proxy")["p50_ms"] - lat("translated c=1", "direct")["p50_ms"]
    )
    out = {
        "added_p50_ms_c1": round(added_p50, 3),
        "added_p99_ms_c1": round(added_p99, 3),
        f"throughput_ratio_c{concurrency}": round(ratio, 3),
        "ttft_overhead_p50_ms": round(ttft_p["p50_ms"] - ttft_d["p50_ms"], 3),
        "ttft_overhead_p99_ms": round(ttft_p["p99_ms"] - ttft_d["p99_ms"], 3),
        "translated_added_p50_ms_c1": round(translated_p50, 3),
        "translation_cost_over_passthrough_p50_ms": round(translated_p50 - added_p50, 3),
        "goal_added_p50_under_1ms": added_p50 < GOAL_ADDED_P50_MS,
        "goal_throughput_ratio_at_least_0_7": ratio >= GOAL_THROUGHPUT_RATIO,
    }
    if "relay" in scenarios[c1]:
        relay_ttft = scenarios["stream c=1"]["relay"]["ttft"]
        out["relay_floor"] = {
            "added_p50_ms_c1": round(lat(c1, "relay")["p50_ms"] - lat(c1, "direct")["p50_ms"], 3),
            "added_p99_ms_c1": round(lat(c1, "relay")["p99_ms"] - lat(c1, "direct")["p99_ms"], 3),
            f"throughput_ratio_c{concurrency}": round(
                lat(cN, "relay")["rps"] / lat(cN, "direct")["rps"], 3
            ),
            "ttft_overhead_p50_ms": round(relay_ttft["p50_ms"] - ttft_d["p50_ms"], 3),
        }
    return out


def markdown(scenarios: dict[str, Any], summary: dict[str, Any], concurrency: int) -> str:
    lines = [
        "| scenario | path | requests | req/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, entry in scenarios.items():
        for key in entry:
            for metric in ("latency", "ttft"):
                if metric not in entry[key]:
                    continue
                st = entry[key][metric]
                name = label if metric == "latency" else f"{label} (TTFT)"
                if metric == "latency" and "ttft" in entry[key]:
                    name = f"{label} (whole stream)"
                lines.append(
                    f"| {name} | {key} | {st['requests']} | {st['rps']:.0f} | "
                    f"{st['p50_ms']:.3f} | {st['p90_ms']:.3f} | {st['p99_ms']:.3f} | "
                    f"{st['errors']} |"
                )
    yes = {True: "**met**", False: "**not met**"}
    ratio = summary[f"throughput_ratio_c{concurrency}"]
    lines += [
        "",
        "| derived | value | goal |",
        "|---|---:|---|",
        f"| added latency p50, c=1 | {summary['added_p50_ms_c1']:.3f} ms | "
        f"< {GOAL_ADDED_P50_MS:g} ms: {yes[summary['goal_added_p50_under_1ms']]} |",
        f"| added latency p99, c=1 | {summary['added_p99_ms_c1']:.3f} ms | |",
        f"| throughput proxy/direct, c={concurrency} | {ratio:.0%} | "
        f">= {GOAL_THROUGHPUT_RATIO:.0%}: {yes[summary['goal_throughput_ratio_at_least_0_7']]} |",
        f"| TTFT overhead p50 / p99 | {summary['ttft_overhead_p50_ms']:.3f} / "
        f"{summary['ttft_overhead_p99_ms']:.3f} ms | |",
        f"| translated (Anthropic client -> OpenAI upstream) added p50, c=1 | "
        f"{summary['translated_added_p50_ms_c1']:.3f} ms | |",
        f"| translation cost over passthrough, p50 | "
        f"{summary['translation_cost_over_passthrough_p50_ms']:.3f} ms | |",
    ]
    floor = summary.get("relay_floor")
    if floor:
        lines += [
            f"| bare aiohttp relay (floor): added p50 / p99, c=1 | "
            f"{floor['added_p50_ms_c1']:.3f} / {floor['added_p99_ms_c1']:.3f} ms | |",
            f"| bare aiohttp relay (floor): throughput relay/direct, c={concurrency} | "
            f"{floor[f'throughput_ratio_c{concurrency}']:.0%} | |",
            f"| bare aiohttp relay (floor): TTFT overhead p50 | "
            f"{floor['ttft_overhead_p50_ms']:.3f} ms | |",
        ]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = platform.processor() or "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        # Read-only: no optional locks, so a concurrent git command in the tree is not disturbed.
        out = subprocess.run(
            ["git", "--no-optional-locks", "-C", repo, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def cpu_times() -> dict[str, list[int]]:
    """Jiffies per CPU and in total ("cpu"): user nice system idle iowait irq softirq steal."""
    times: dict[str, list[int]] = {}
    with contextlib.suppress(OSError, ValueError), open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu"):
                name, *fields = line.split()
                times[name] = [int(x) for x in fields[:8]]
    return times


def cpu_split(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, Any]:
    """Percent of each CPU's time per state over the run; steal shows noisy neighbours."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    out: dict[str, Any] = {}
    for cpu, end in after.items():
        start = before.get(cpu)
        if not start or len(start) != 8 or len(end) != 8:
            continue
        delta = [b - a for a, b in zip(start, end, strict=True)]
        total = sum(delta) or 1
        out[cpu] = {n: round(100 * d / total, 1) for n, d in zip(names, delta, strict=True)}
    return out


# --------------------------------------------------------------------------- main


def cpu_plan(pin: bool) -> tuple[int | None, int | None]:
    """(core for load generator + upstream, core for the proxy), or no pinning."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(allowed) < 2:
        return None, None
    return allowed[0], allowed[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="write results here, not to stdout")
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="upstream pause between SSE chunks"
    )
    parser.add_argument("--access-log", action="store_true", help="proxy logs like `plano up`")
    parser.add_argument("--profile-proxy", metavar="PATH", help="cProfile the proxy process")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place processes")
    parser.add_argument(
        "--no-relay", action="store_true", help="skip the bare aiohttp relay (the floor)"
    )
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    shared_cpu, proxy_cpu = cpu_plan(not args.no_pin)

    ctx = mp.get_context("spawn")  # fresh interpreters: no inherited loop or sockets
    children: list[Child] = []
    load = {"start": os.getloadavg()}
    cpu_before = cpu_times()
    started = time.time()
    try:
        print("starting upstream and proxy ...", file=sys.stderr, flush=True)
        upstream, upstream_port = start_child(
            ctx, upstream_main, shared_cpu, args.chunk_delay_ms / 1000, name="upstream"
        )
        children.append(upstream)
        proxy, (proxy_port, relay_port) = start_child(
            ctx,
            proxy_main,
            proxy_cpu,
            upstream_port,
            args.access_log,
            args.profile_proxy and os.path.abspath(args.profile_proxy),
            not args.no_relay,
            name="proxy",
        )
        children.append(proxy)
        if shared_cpu is not None:
            os.sched_setaffinity(0, {shared_cpu})
        scenarios = asyncio.run(
            measure_all(
                settings,
                f"http://127.0.0.1:{upstream_port}",
                f"http://127.0.0.1:{proxy_port}",
                relay_port and f"http://127.0.0.1:{relay_port}",
            )
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for child in reversed(children):
            child.stop()
    load["end"] = os.getloadavg()
    cpu_share = cpu_split(cpu_before, cpu_times())

    summary = derive(scenarios, settings.concurrency)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "commit": git_commit(),
        "machine": machine(),
        "load_average_1_5_15": {k: [round(x, 2) for x in v] for k, v in load.items()},
        # Steal is time the hypervisor gave our vCPUs to someone else: a noisy-neighbour gauge.
        "cpu_share_during_run": cpu_share,
        "placement": {
            "load_generator_and_upstream_cpu": shared_cpu,
            "proxy_cpu": proxy_cpu,
        },
        "settings": {**asdict(settings), "chunk_delay_ms": args.chunk_delay_ms},
        "proxy_access_log": args.access_log,
        "scenarios": scenarios,
        "summary": summary,
    }
    print(markdown(scenarios, summary, settings.concurrency))
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
