"""The admin listener: Prometheus metrics, an OTLP/HTTP span receiver, and a health check.

Served by the telemetry worker, so a scrape or a flood of agent spans never competes with
the model listener's event loop.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from aiohttp import web

from proxy.telemetry.metrics import GatewayMetrics
from proxy.telemetry.otlp_ingest import (
    OtlpDecodeError,
    decode_export_request,
    error_response,
    export_response,
)
from proxy.telemetry.store import StoreBatch

MAX_OTLP_BODY = 16 * 1024 * 1024


def build_admin_app(
    metrics: GatewayMetrics,
    ingest: Callable[[StoreBatch], None],
    health: Callable[[], dict],
) -> web.Application:
    app = web.Application(client_max_size=MAX_OTLP_BODY)

    async def serve_metrics(request: web.Request) -> web.Response:
        body, content_type = metrics.render(request.headers.get("Accept"))
        # aiohttp wants the charset apart from the media type.
        media, _, params = content_type.partition(";")
        charset = "utf-8" if "charset=utf-8" in params.replace(" ", "") else None
        return web.Response(body=body, content_type=media.strip(), charset=charset)

    async def receive_traces(request: web.Request) -> web.Response:
        content_type = request.headers.get("Content-Type")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _otlp_error(content_type, f"body larger than {MAX_OTLP_BODY} bytes", 413)
        try:
            batch = decode_export_request(
                body, content_type, request.headers.get("Content-Encoding")
            )
        except OtlpDecodeError as exc:
            return _otlp_error(content_type, str(exc), exc.status)
        ingest(batch)
        payload, media = export_response(content_type)
        return web.Response(body=payload, content_type=media)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(health()), content_type="application/json")

    app.router.add_get("/metrics", serve_metrics)
    app.router.add_post("/v1/traces", receive_traces)
    app.router.add_get("/healthz", healthz)
    return app


def _otlp_error(content_type: str | None, message: str, status: int) -> web.Response:
    payload, media = error_response(content_type, message)
    return web.Response(body=payload, status=status, content_type=media)
