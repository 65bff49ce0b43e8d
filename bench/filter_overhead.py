"""What a pass-through http filter costs a request, beyond the filter's own time.

Usage: python bench/filter_overhead.py [--quick] [--json PATH] [--no-pin]

Three processes on 127.0.0.1, placed as in bench/proxy_overhead.py (the load generator and
the stand-ins share one core, Plano gets the other):
- stand-ins (aiohttp): an OpenAI-wire provider answering instantly (a canned JSON body, or
  ~20 SSE chunks), and a pass-through http filter (upstream's protocol: it answers 200
  with the body it got) that times itself, from its handler's start to its reply;
- the real ProxyServer with three model listeners over the same provider: `plain` (no
  filters), `input` (the filter as an input filter) and `output` (as an output filter);
- this process, the load generator (one aiohttp session, concurrency 1).

Per scenario the filter's cost is the p50 of `input` (or `output`) minus the p50 of
`plain`, and Plano's share of it is that minus the filter's own p50, measured at the
filter server. What is left is Plano's side of the call (headers, the request, reading and
checking the reply, the step record) and the loopback HTTP exchange. For scale, the same
call made by this process straight to the filter is measured too (`direct call`): a client
of its own pays that much to call a filter at all. Rounds alternate the listeners so noise
lands on all of them alike. Telemetry is off (no worker); uvloop as `plano up`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import agent_overhead as ao
import aiohttp
import orjson
import proxy_overhead as po

GOAL_ADDED_P50_MS = 1.0
MODEL = "gpt-4o-mini"


Settings = ao.Settings  # requests: per listener and scenario, split over the rounds
FULL = Settings(requests=2000, warmup=200, rounds=10)
QUICK = Settings(requests=300, warmup=50, rounds=3)


# --------------------------------------------------------------------------- stand-ins


def stand_ins_main(conn: Connection, cpu: int | None) -> None:
    po._child_setup(cpu)
    asyncio.run(_stand_ins(conn))


async def _stand_ins(conn: Connection) -> None:
    from aiohttp import web

    answer, stream = _answer(), _stream()
    own: list[float] = []  # the filter's own seconds per call

    async def provider(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("stream"):
            return web.Response(body=stream, content_type="text/event-stream")
        return web.Response(body=answer, content_type="application/json")

    async def passthrough(request: web.Request) -> web.Response:
        started = time.perf_counter()
        body = await request.read()
        response = web.Response(body=body, content_type=request.content_type)
        own.append(time.perf_counter() - started)
        return response

    upstream = web.Application()
    upstream.router.add_post("/v1/chat/completions", provider)
    guard = web.Application()
    guard.router.add_post("/{tail:.*}", passthrough)
    runners, ports = [], []
    for app in (upstream, guard):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        ports.append(runner.addresses[0][1])
    conn.send(ports)
    await _serve_queries(conn, own)
    for runner in runners:
        await runner.cleanup()


async def _serve_queries(conn: Connection, own: list[float]) -> None:
    """ "times": send the filter's own times so far and clear them; anything else stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            message = conn.recv()
        except EOFError:
            message = "stop"
        if message == "times":
            conn.send(list(own))
            own.clear()
        else:
            stop.set()

    loop.add_reader(conn.fileno(), readable)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(conn.fileno())


def _answer() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there, friend."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        }
    )


def _stream() -> bytes:
    return b"".join([po.ROLE_CHUNK, *po.CONTENT_CHUNKS, po.FINISH_CHUNK, po.DONE])


# --------------------------------------------------------------------------- Plano


def plano_main(conn: Connection, cpu: int | None, ports: list[int]) -> None:
    po._child_setup(cpu)
    from proxy.server.event_loop import run

    run(_plano(conn, ports))


async def _plano(conn: Connection, ports: list[int]) -> None:
    import dataclasses

    from proxy.config import Mode, check_text
    from proxy.server.runner import ProxyServer

    upstream, guard = ports
    # One model listener per config: three servers in this one process, one per case.
    servers, bound = [], {}
    for name, keys in (
        ("plain", ""),
        ("input", ", input_filters: [pass]"),
        ("output", ", output_filters: [pass]"),
    ):
        text = f"""
version: v0.4.0
model_providers:
  - {{model: openai/{MODEL}, base_url: "http://127.0.0.1:{upstream}/v1", access_key: k,
      default: true}}
filters:
  - {{id: pass, type: http, url: "http://127.0.0.1:{guard}"}}
listeners:
  - {{name: {name}, type: model, port: 12000{keys}}}
"""
        result = check_text(text, env={}, mode=Mode.SERVE)
        assert result.ok, [p.message for p in result.errors]
        listeners = tuple(
            dataclasses.replace(lst, port=0, address="127.0.0.1") for lst in result.config.listeners
        )
        server = ProxyServer(dataclasses.replace(result.config, listeners=listeners))
        await server.start()
        servers.append(server)
        bound.update({b.listener.name: b.port for b in server.bound})
    conn.send(bound)
    await ao._serve_cpu_queries(conn)
    for server in servers:
        await server.stop()


# --------------------------------------------------------------------------- load


def _body(stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": f"openai/{MODEL}",
            "stream": stream,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        }
    )


async def _post(session: aiohttp.ClientSession, url: str, data: bytes) -> None:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer client-key"}
    async with session.post(url, data=data, headers=headers) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")


async def _timed(session, url: str, data: bytes, n: int, out: list[float]) -> None:
    for _ in range(n):
        started = time.perf_counter()
        await _post(session, url, data)
        out.append(time.perf_counter() - started)


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(po._percentile(ordered, 0.50) * 1000, 3),
        "p90": round(po._percentile(ordered, 0.90) * 1000, 3),
        "p99": round(po._percentile(ordered, 0.99) * 1000, 3),
    }


async def measure(
    settings: Settings, urls: dict[str, str], stand_ins: po.Child, plano: po.Child
) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        cases = {
            "input_json": ("input", False),
            "output_json": ("output", False),
            "output_stream": ("output", True),
        }
        direct_body = _body(False)
        for listener, stream in cases.values():
            await _timed(session, urls["plain"], _body(stream), settings.warmup, [])
            await _timed(session, urls[listener], _body(stream), settings.warmup, [])
        await _timed(session, urls["filter"], direct_body, settings.warmup, [])
        stand_ins.conn.send("times")
        stand_ins.conn.recv()
        per_round = settings.requests // settings.rounds
        plain = {name: [] for name in cases}
        filtered = {name: [] for name in cases}
        own = {name: [] for name in cases}
        direct: list[float] = []
        cpu = {name: [0.0, 0.0] for name in cases}  # Plano's CPU seconds: plain, filtered
        for _ in range(settings.rounds):
            for name, (listener, stream) in cases.items():
                body = _body(stream)
                before = ao._cpu(plano)
                await _timed(session, urls["plain"], body, per_round, plain[name])
                middle = ao._cpu(plano)
                await _timed(session, urls[listener], body, per_round, filtered[name])
                cpu[name][0] += middle - before
                cpu[name][1] += ao._cpu(plano) - middle
                stand_ins.conn.send("times")
                own[name] += stand_ins.conn.recv()
            await _timed(session, urls["filter"], direct_body, per_round, direct)
            stand_ins.conn.send("times")
            stand_ins.conn.recv()
        for name in cases:
            p, f, o = _ms(plain[name]), _ms(filtered[name]), _ms(own[name])
            calls = len(own[name]) / max(len(filtered[name]), 1)
            added = round(f["p50"] - p["p50"], 3)
            scenarios[name] = {
                "plain_ms": p,
                "filtered_ms": f,
                "filter_calls_per_request": round(calls, 2),
                "filter_own_ms": o,
                "filter_step_added_p50_ms": added,
                # The filter's own time is per call; an output stream calls it per chunk.
                "plano_added_p50_ms": round(added - o["p50"] * calls, 3),
                # Plano's own CPU per request (all its threads): steadier than wall times
                # on a busy machine.
                "plano_cpu_ms_per_request": {
                    "plain": round(cpu[name][0] * 1000 / len(plain[name]), 3),
                    "filtered": round(cpu[name][1] * 1000 / len(filtered[name]), 3),
                },
            }
        scenarios["direct_call_to_the_filter"] = {"ms": _ms(direct)}
    return scenarios


def markdown(scenarios: dict[str, Any]) -> str:
    lines = [
        "| scenario | no filter p50 | with the filter p50 | filter calls / request "
        "| filter's own p50 | added by the filter step p50 | Plano's share p50 "
        "| Plano CPU / request: no filter, with |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in scenarios.items():
        if "plain_ms" not in s:
            continue
        lines.append(
            f"| {name} | {s['plain_ms']['p50']:.3f} ms | {s['filtered_ms']['p50']:.3f} ms | "
            f"{s['filter_calls_per_request']:g} | {s['filter_own_ms']['p50']:.3f} ms | "
            f"{s['filter_step_added_p50_ms']:.3f} ms | {s['plano_added_p50_ms']:.3f} ms | "
            f"{s['plano_cpu_ms_per_request']['plain']:.3f} ms, "
            f"{s['plano_cpu_ms_per_request']['filtered']:.3f} ms |"
        )
    direct = scenarios["direct_call_to_the_filter"]["ms"]
    lines.append("")
    lines.append(
        f"A client calling the filter itself (same body, same kind of pooled aiohttp "
        f"session): p50 {direct['p50']:.3f} ms, p99 {direct['p99']:.3f} ms."
    )
    return "\n".join(lines)


def _measure(
    settings: Settings,
    ports: list[int],
    listeners: dict[str, int],
    stand_ins: po.Child,
    plano: po.Child,
) -> dict[str, Any]:
    base = "http://127.0.0.1:{}/v1/chat/completions"
    urls = {name: base.format(port) for name, port in listeners.items()}
    urls["filter"] = base.format(ports[1])
    return asyncio.run(measure(settings, urls, stand_ins, plano))


def _summary(scenarios: dict[str, Any]) -> dict[str, Any]:
    added = scenarios["input_json"]["plano_added_p50_ms"]
    return {
        "input_plano_added_p50_ms": added,
        "goal_p50_ms": GOAL_ADDED_P50_MS,
        "goal_met": added < GOAL_ADDED_P50_MS,
    }


def main() -> int:
    return ao.bench_main(
        __doc__,
        (QUICK, FULL),
        stand_ins_main,
        plano_main,
        _measure,
        _summary,
        markdown,
        cpu_share=False,
        print_summary_only=False,
    )


if __name__ == "__main__":
    sys.exit(main())
