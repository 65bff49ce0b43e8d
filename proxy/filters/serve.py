"""`plano filters serve`: the built-in guardrails as upstream-compatible http filters.

Each filter is mounted at /<filter id>: upstream Plano (or any gateway speaking its
protocol) configures `url: http://host:port/<id>` and POSTs `{url}{request path}` with the
request body. The answer follows upstream's protocol: 200 with the body (rewritten or
not), or the block's status with a JSON body naming the filter and carrying its message.
A body that is not JSON is answered 400: a guardrail that cannot read it must not wave
it through.

Input side only. An output filter over http sees one upstream chunk per call, so a value
cut across chunks would slip past and there is nowhere to put a held-back tail; and the
anonymize action's restore needs the request and its answer paired. Both work in-process
(`type: builtin` on `plano up`); here `anonymize` is refused at start-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from proxy.filters import texts
from proxy.filters.builtin import build_builtin, option_problems
from proxy.filters.builtin.base import BuiltinFilter
from proxy.filters.verdict import Decision

MAX_BODY = 32 * 1024 * 1024


class ServeError(Exception):
    """A filter that cannot be served; the message says which and why."""


def build_filters(entries: list[Mapping[str, Any]]) -> dict[str, BuiltinFilter]:
    """The built-ins of config `filters:` entries (others are skipped), by id."""
    filters: dict[str, BuiltinFilter] = {}
    for entry in entries:
        if not isinstance(entry, Mapping) or entry.get("type") != "builtin":
            continue
        fid, kind = str(entry.get("id", "")), str(entry.get("kind", ""))
        if not fid or "/" in fid:
            raise ServeError(f"filter {fid!r}: an id without '/' is needed to mount it")
        problems = option_problems(kind, entry)
        if problems:
            raise ServeError(f"filter {fid!r}: " + "; ".join(problems))
        if kind == "pii" and entry.get("action") == "anonymize":
            raise ServeError(
                f"filter {fid!r}: action anonymize is not served over http (restoring the "
                "answer needs the request and its answer paired); use it as a builtin "
                "filter of `plano up`, or action redact here"
            )
        filters[fid] = build_builtin(kind, entry)
    if not filters:
        raise ServeError("no built-in filter (type: builtin) to serve")
    return filters


def make_app(filters: dict[str, BuiltinFilter]) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def handle(request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        builtin = filters.get(fid)
        if builtin is None:
            return _error(404, fid, f"no filter {fid!r} here; filters: {', '.join(filters)}")
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, fid, "the request body is not JSON")
        path = "/" + request.match_info["path"]
        # The detectors are CPU work: off the event loop, so one big prompt does not stall
        # the other requests.
        verdict = await asyncio.to_thread(builtin.check_request, body, texts.api_for_path(path), {})
        if verdict.decision is Decision.BLOCK:
            return _error(verdict.status or 400, fid, verdict.message or "blocked")
        out = verdict.body if verdict.decision is Decision.MODIFY and verdict.body else raw
        return web.Response(body=out, content_type="application/json")

    app.router.add_post("/{fid}/{path:.*}", handle)
    app.router.add_post("/{fid}", handle)
    app.router.add_get("/healthz", lambda _: web.json_response({"filters": list(filters)}))
    return app


def _error(status: int, fid: str, message: str) -> web.Response:
    body = {
        "error": {
            "type": "filter_blocked" if status < 500 else "filter_error",
            "filter": fid,
            "message": message,
        }
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
