"""The real Prometheus scrapes GatewayMetrics over HTTP, and PromQL sees what was observed."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from prometheus_harness import PROMETHEUS, start_prometheus, value

from proxy.telemetry.metrics import GatewayMetrics
from proxy.telemetry.record import AttemptRecord, RoutingRecord, TelemetryRecord

pytestmark = pytest.mark.slow

MS = 1_000_000
GPT = "openai/gpt-4o"
CLAUDE = "anthropic/claude-sonnet-4"


@contextlib.contextmanager
def serve_metrics(metrics: GatewayMetrics, served: list[str]) -> Iterator[str]:
    """GET /metrics on an ephemeral loopback port, served from a thread with its own loop.

    In a thread so the test can block on Prometheus queries while scrapes keep being
    answered. Yields host:port; appends each response's content type to `served`.
    """

    async def handle(request: web.Request) -> web.Response:
        body, content_type = metrics.render(request.headers.get("Accept"))
        served.append(content_type)
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="metrics-http", daemon=True)
    thread.start()

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"{host}:{port}"

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def request(model: str, latency_ms: float, **fields) -> TelemetryRecord:
    start = 1_700_000_000_000 * MS
    provider = model.split("/")[0]
    ok = [AttemptRecord("1" * 16, model, provider, "ok", start, start + 1)]
    fields.setdefault("attempts", ok)
    return TelemetryRecord(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        sampled=False,
        start_ns=start,
        end_ns=start + int(latency_ms * MS),
        request_id="req-1",
        listener="llm",
        api="openai_chat",
        path="/v1/chat/completions",
        model=model,
        provider=provider,
        status=200,
        first_token_ns=start + 100 * MS,
        input_tokens=100,
        output_tokens=50,
        **fields,
    )


def equals(expected: float):
    return lambda result: value(result) == expected


def test_prometheus_scrapes_gateway_metrics(tmp_path):
    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    metrics = GatewayMetrics()
    # Three in the 0.25-0.5 s bucket: the median interpolates to 0.375 s.
    for latency_ms in (300, 400, 450):
        metrics.observe(request(GPT, latency_ms), cost_usd=0.01)
    routing = RoutingRecord("2" * 16, 0, 1, None, [], "ollama", 3000.0, fallback="ollama: timeout")
    failed = [
        AttemptRecord("3" * 16, GPT, "openai", "HTTP 503", 0, 1),
        AttemptRecord("4" * 16, CLAUDE, "anthropic", "ok", 1, 2),
    ]
    metrics.observe(request(CLAUDE, 2000, routing=routing, attempts=failed))

    served: list[str] = []
    with serve_metrics(metrics, served) as target, start_prometheus(tmp_path, [target]) as prom:
        prom.wait_for(f'up{{job="plano",instance="{target}"}}', equals(1))
        # Prometheus asks for OpenMetrics first, and ingests it.
        assert served[0].startswith("application/openmetrics-text; version=1.0.0")
        gpt = f'plano_requests_total{{model="{GPT}"}}'
        assert value(prom.wait_for(gpt, equals(3))) == 3
        [series] = prom.query(gpt)
        assert series["metric"] == {
            "__name__": "plano_requests_total",
            "job": "plano",
            "instance": target,
            "listener": "llm",
            "api": "openai_chat",
            "model": GPT,
            "provider": "openai",
            "route": "none",
            "status": "200",
        }
        median = prom.query(
            "histogram_quantile(0.5, sum by (le) "
            f'(plano_request_duration_seconds_bucket{{model="{GPT}"}}))'
        )
        assert value(median) == pytest.approx(0.375)
        assert value(prom.query("sum(plano_requests_total)")) == 4
        assert value(prom.query("sum(plano_cost_usd_total)")) == pytest.approx(0.03)
        failovers = f'plano_failovers_total{{from_model="{GPT}",to_model="{CLAUDE}"}}'
        assert value(prom.query(failovers)) == 1
        fallbacks = prom.query('plano_router_fallbacks_total{backend="ollama"}')
        assert [s["metric"]["reason"] for s in fallbacks] == ["timeout"]
        # Without _created series each family is one series per label set.
        assert prom.query('{__name__=~"plano_.*_created"}') == []

        # Later observations reach Prometheus on the next scrape.
        metrics.observe(request(GPT, 1200))
        metrics.observe_dropped(7)
        prom.wait_for(gpt, equals(4))
        prom.wait_for("plano_telemetry_dropped_total", equals(7))
        p99 = prom.query(
            "histogram_quantile(0.99, sum by (le) (plano_request_duration_seconds_bucket))"
        )
        assert 1.0 < value(p99) <= 2.5
