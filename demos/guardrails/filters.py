"""The demo's own http filter, written to upstream Plano's filter protocol: Plano POSTs the
request body to {url}{path}; a 2xx answer (with the body) lets it through, a 4xx blocks it.

    python demos/guardrails/filters.py     # serves http://127.0.0.1:10500
"""

from __future__ import annotations

import json

from aiohttp import web

BLOCKED_WORDS = ("rm -rf", "drop table")


async def guard(request: web.Request) -> web.Response:
    body = await request.read()
    text = json.dumps(json.loads(body).get("messages", [])).lower()
    for word in BLOCKED_WORDS:
        if word in text:
            # Upstream's demo content guard answers this shape.
            detail = {"error": "content_blocked", "reason": f"the request mentions '{word}'"}
            return web.json_response({"detail": detail}, status=400)
    return web.Response(body=body, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def app() -> web.Application:
    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_post("/{path:.*}", guard)
    return application


if __name__ == "__main__":
    web.run_app(app(), host="127.0.0.1", port=10500, print=None)
