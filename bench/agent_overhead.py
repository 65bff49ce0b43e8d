"""What an agent listener adds to a request, beyond the calls it has to make.

Usage: python bench/agent_overhead.py [--quick] [--json PATH] [--no-pin]

Three processes on 127.0.0.1, placed as in bench/proxy_overhead.py (the load generator and
the stand-ins share one core, Plano gets the other):
- stand-ins (aiohttp): two agents answering Chat Completions instantly (a canned JSON body,
  or ~20 SSE chunks), and an orchestrator LLM answering `{"route": [...]}` instantly;
- the real ProxyServer with two agent listeners: `solo` (one agent: no orchestrator call)
  and `chain` (two agents; the orchestrator LLM names both, the decision cache is off so
  every request asks it);
- this process, the load generator (one aiohttp session, concurrency 1).

Plano's added time is measured against a client making the same calls itself: for `solo`,
the agent call; for `chain`, the orchestrator call and the two agent calls in sequence,
the second with the first's answer handed on. So the stand-ins' own time (parsing, answering,
the loopback hops of the calls Plano must make) is in both, and the difference is Plano's:
its request edge, the orchestrator prompt and reply parsing, the handoff, the relay, and
its own hop from the client. Direct and proxied runs alternate in rounds.

Telemetry is off (no worker), as in bench/proxy_overhead.py; uvloop as `plano up`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import orjson
import proxy_overhead as po

GOAL_SOLO_P50_MS = 2.0
GOAL_CHAIN_P50_MS = 3.0
CHUNKS = 20
USER = "What is the weather in Paris, and is there a flight there tomorrow?"


@dataclass(frozen=True, slots=True)
class Settings:
    requests: int  # per target and scenario, split over the rounds
    warmup: int
    rounds: int


FULL = Settings(requests=2000, warmup=200, rounds=10)
QUICK = Settings(requests=200, warmup=30, rounds=2)


# --------------------------------------------------------------------------- stand-ins


def _answer(agent: str) -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": agent,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"{agent} says hello."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }
    )


def _stream(agent: str) -> bytes:
    chunks = [po._chunk({"role": "assistant", "content": ""})]
    chunks += [po._chunk({"content": f" {agent}{i}"}) for i in range(CHUNKS)]
    chunks.append(po._chunk({}, "stop"))
    return b"".join(chunks) + b"data: [DONE]\n\n"


ROUTE = orjson.dumps(
    {
        "id": "chatcmpl-orch",
        "object": "chat.completion",
        "created": 1,
        "model": "Plano-Orchestrator",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": '{"route": ["weather", "flight"]}'},
                "finish_reason": "stop",
            }
        ],
    }
)


def stand_ins_main(conn: Connection, cpu: int | None) -> None:
    po._child_setup(cpu)
    asyncio.run(_stand_ins(conn))


async def _stand_ins(conn: Connection) -> None:
    from aiohttp import web

    def agent_app(agent: str) -> web.Application:
        whole, stream = _answer(agent), _stream(agent)

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            if body.get("stream"):
                return web.Response(body=stream, content_type="text/event-stream")
            return web.Response(body=whole, content_type="application/json")

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        return app

    async def route(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ROUTE, content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    orchestrator = web.Application()
    orchestrator.router.add_post("/v1/chat/completions", route)
    orchestrator.router.add_get("/v1/models", models)
    ports = []
    runners = []
    for app in (agent_app("weather"), agent_app("flight"), orchestrator):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        ports.append(runner.addresses[0][1])
    conn.send(ports)
    await po._until_parent_says_stop(conn)
    for runner in runners:
        await runner.cleanup()


# --------------------------------------------------------------------------- Plano


def plano_main(conn: Connection, cpu: int | None, ports: list[int]) -> None:
    po._child_setup(cpu)
    from proxy.server.event_loop import run

    run(_plano(conn, ports))


async def _plano(conn: Connection, ports: list[int]) -> None:
    import dataclasses

    from proxy.config import Mode, check_text
    from proxy.server.runner import ProxyServer

    weather, flight, orchestrator = ports
    text = f"""
version: v0.3.0
agents:
  - {{id: weather, url: "http://127.0.0.1:{weather}"}}
  - {{id: flight, url: "http://127.0.0.1:{flight}"}}
model_providers:
  - {{model: plano/Plano-Orchestrator, base_url: "http://127.0.0.1:{orchestrator}/v1"}}
overrides: {{llm_routing_model: plano/Plano-Orchestrator}}
routing: {{router: {{backend: openai-compatible, cache_size: 0}}}}
listeners:
  - type: agent
    name: solo
    port: 18001
    agents: [{{id: weather, description: weather forecasts}}]
  - type: agent
    name: chain
    port: 18002
    agents:
      - {{id: weather, description: weather forecasts}}
      - {{id: flight, description: flights between airports}}
"""
    result = check_text(text, env={}, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.errors]
    listeners = tuple(
        dataclasses.replace(lst, port=0, address="127.0.0.1") for lst in result.config.listeners
    )
    server = ProxyServer(dataclasses.replace(result.config, listeners=listeners))
    await server.start()
    conn.send({b.listener.name: b.port for b in server.bound})
    await _serve_cpu_queries(conn)
    await server.stop()


async def _serve_cpu_queries(conn: Connection) -> None:
    """Answer "cpu" with this process's CPU seconds so far; stop on anything else (or EOF)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            message = conn.recv()
        except EOFError:
            message = "stop"
        if message == "cpu":
            conn.send(time.process_time())
        else:
            stop.set()

    loop.add_reader(conn.fileno(), readable)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(conn.fileno())


# --------------------------------------------------------------------------- load


def _body(stream: bool, messages: list[dict] | None = None) -> bytes:
    body: dict[str, Any] = {
        "model": "travel",
        "messages": messages or [{"role": "user", "content": USER}],
    }
    if stream:
        body["stream"] = True
    return orjson.dumps(body)


async def _post(session: aiohttp.ClientSession, url: str, data: bytes) -> bytes:
    async with session.post(
        url, data=data, headers={"Content-Type": "application/json"}
    ) as response:
        payload = await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}: {payload[:200]!r}")
        return payload


async def _direct_solo(session, urls, stream: bool) -> None:
    await _post(session, urls["weather"], _body(stream))


async def _direct_chain(session, urls, stream: bool) -> None:
    # What Plano does, done by the client: ask the orchestrator, then each agent in turn.
    prompt = {"model": "Plano-Orchestrator", "messages": [{"role": "user", "content": USER}]}
    orjson.loads(await _post(session, urls["orchestrator"], orjson.dumps(prompt)))
    first = await _post(session, urls["weather"], _body(stream))
    handoff = {"role": "assistant", "content": _text(first, stream), "name": "weather"}
    await _post(
        session,
        urls["flight"],
        _body(stream, [handoff, {"role": "user", "content": USER}]),
    )


def _text(payload: bytes, stream: bool) -> str:
    """An answer's text, as Plano reads an intermediate agent's (a stream joined)."""
    if not stream:
        return orjson.loads(payload)["choices"][0]["message"]["content"]
    parts = []
    for line in payload.split(b"\n"):
        if line.startswith(b"data: {"):
            for choice in orjson.loads(line[6:])["choices"]:
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


async def _proxied(session, url: str, stream: bool) -> None:
    await _post(session, url, _body(stream))


async def _timed(fn, n: int, latencies: list[float]) -> None:
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        latencies.append(time.perf_counter() - started)


def _cpu(plano: po.Child) -> float:
    plano.conn.send("cpu")
    return plano.conn.recv()


async def measure(settings: Settings, urls: dict[str, str], plano: po.Child) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    scenarios: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector) as session:
        cases = {
            "solo_json": (
                lambda: _direct_solo(session, urls, False),
                lambda: _proxied(session, urls["solo"], False),
            ),
            "solo_stream": (
                lambda: _direct_solo(session, urls, True),
                lambda: _proxied(session, urls["solo"], True),
            ),
            "chain_json": (
                lambda: _direct_chain(session, urls, False),
                lambda: _proxied(session, urls["chain"], False),
            ),
            "chain_stream": (
                lambda: _direct_chain(session, urls, True),
                lambda: _proxied(session, urls["chain"], True),
            ),
        }
        for direct, proxied in cases.values():
            await _timed(direct, settings.warmup, [])
            await _timed(proxied, settings.warmup, [])
        # Every round runs every scenario, direct then via Plano: noise from the machine
        # (a busy neighbour, a frequency step) lands on all of them alike.
        per_round = settings.requests // settings.rounds
        samples = {name: ([], []) for name in cases}
        cpu = dict.fromkeys(cases, 0.0)  # Plano's CPU seconds over its requests
        for _ in range(settings.rounds):
            for name, (direct, proxied) in cases.items():
                await _timed(direct, per_round, samples[name][0])
                before = _cpu(plano)
                await _timed(proxied, per_round, samples[name][1])
                cpu[name] += _cpu(plano) - before
        for name, (d, p) in samples.items():
            ds = po.summarize(d, 0, sum(d))
            ps = po.summarize(p, 0, sum(p))
            scenarios[name] = {
                # What Plano's process spent per request (all its threads): unlike the wall
                # times, this does not grow when other work on the machine delays it.
                "plano_cpu_ms_per_request": round(cpu[name] * 1000 / len(p), 3),
                "direct": asdict(ds),
                "plano": asdict(ps),
                "added_ms": {
                    "p50": round(ps.p50_ms - ds.p50_ms, 3),
                    "p90": round(ps.p90_ms - ds.p90_ms, 3),
                    "p99": round(ps.p99_ms - ds.p99_ms, 3),
                    "mean": round(ps.mean_ms - ds.mean_ms, 3),
                },
            }
    return scenarios


def markdown(scenarios: dict[str, Any]) -> str:
    lines = [
        "| scenario | direct p50 | via Plano p50 | added p50 | added p90 | added p99 "
        "| Plano CPU / request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in scenarios.items():
        lines.append(
            f"| {name} | {s['direct']['p50_ms']:.3f} ms | {s['plano']['p50_ms']:.3f} ms | "
            f"{s['added_ms']['p50']:.3f} ms | {s['added_ms']['p90']:.3f} ms | "
            f"{s['added_ms']['p99']:.3f} ms | {s['plano_cpu_ms_per_request']:.3f} ms |"
        )
    return "\n".join(lines)


def bench_main(
    doc: str,
    settings: tuple[Any, Any],
    stand_ins: Callable[..., None],
    plano: Callable[..., None],
    measure: Callable[[Any, list[int], dict[str, int], po.Child, po.Child], dict[str, Any]],
    summarize: Callable[[dict[str, Any]], dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
    *,
    cpu_share: bool,
    print_summary_only: bool,
) -> int:
    """The main() of a bench with two children, the stand-ins and Plano (this one and
    bench/filter_overhead.py): the flags, the processes' placement, the run, the result.

    `settings` is (quick, full); `measure(settings, stand-in ports, Plano's listeners,
    stand-ins, plano)` runs in this process, on the load generator's core. `cpu_share` adds
    the machine's CPU split during the run; without --json, `print_summary_only` prints the
    summary after the table, not the whole result."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="write results here, not to stdout")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place processes")
    args = parser.parse_args()
    chosen = settings[0] if args.quick else settings[1]
    shared_cpu, plano_cpu = po.cpu_plan(not args.no_pin)
    ctx = mp.get_context("spawn")
    children: list[po.Child] = []
    started = time.time()
    cpu_before = po.cpu_times()
    try:
        stand_ins_child, ports = po.start_child(ctx, stand_ins, shared_cpu, name="stand-ins")
        children.append(stand_ins_child)
        plano_child, listeners = po.start_child(ctx, plano, plano_cpu, ports, name="plano")
        children.append(plano_child)
        if shared_cpu is not None:
            os.sched_setaffinity(0, {shared_cpu})
        scenarios = measure(chosen, ports, listeners, stand_ins_child, plano_child)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for child in reversed(children):
            child.stop()
    summary = summarize(scenarios)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "commit": po.git_commit(),
        "machine": po.machine(),
    }
    if cpu_share:
        result["cpu_share_during_run"] = po.cpu_split(cpu_before, po.cpu_times())
    result |= {
        "placement": {"load_generator_and_stand_ins_cpu": shared_cpu, "plano_cpu": plano_cpu},
        "settings": asdict(chosen),
        "scenarios": scenarios,
        "summary": summary,
    }
    print(markdown(scenarios))
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    elif print_summary_only:
        print()
        print(json.dumps(summary, indent=2))
    else:
        print(text)
    return 0


def _measure(
    settings: Settings,
    ports: list[int],
    listeners: dict[str, int],
    stand_ins: po.Child,
    plano: po.Child,
) -> dict[str, Any]:
    base = "http://127.0.0.1:{}/v1/chat/completions"
    urls = {
        "weather": base.format(ports[0]),
        "flight": base.format(ports[1]),
        "orchestrator": base.format(ports[2]),
        "solo": base.format(listeners["solo"]),
        "chain": base.format(listeners["chain"]),
    }
    return asyncio.run(measure(settings, urls, plano))


def _summary(scenarios: dict[str, Any]) -> dict[str, Any]:
    summary = {
        "solo_p50_added_ms": scenarios["solo_json"]["added_ms"]["p50"],
        "chain_p50_added_ms": scenarios["chain_json"]["added_ms"]["p50"],
        "solo_cpu_ms": scenarios["solo_json"]["plano_cpu_ms_per_request"],
        "chain_cpu_ms": scenarios["chain_json"]["plano_cpu_ms_per_request"],
        "goal_solo_p50_ms": GOAL_SOLO_P50_MS,
        "goal_chain_p50_ms": GOAL_CHAIN_P50_MS,
    }
    summary["goals_met"] = (
        summary["solo_p50_added_ms"] < GOAL_SOLO_P50_MS
        and summary["chain_p50_added_ms"] < GOAL_CHAIN_P50_MS
    )
    return summary


def main() -> int:
    return bench_main(
        __doc__,
        (QUICK, FULL),
        stand_ins_main,
        plano_main,
        _measure,
        _summary,
        markdown,
        cpu_share=True,
        print_summary_only=True,
    )


if __name__ == "__main__":
    sys.exit(main())
