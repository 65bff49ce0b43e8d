"""`plano filters serve`: the built-in guardrails as upstream-compatible http filters.

Each filter is mounted at /<filter id>: upstream Plano (or any gateway speaking its
protocol) configures `url: http://host:port/<id>` and POSTs `{url}{request path}` with the
request body. The answer follows upstream's protocol: 200 with the body (rewritten or
not), or the block's status with a JSON body naming the filter and carrying its message.
A body that is not a JSON object is answered 400: a guardrail that cannot read it must
not wave it through.

A filter's `mode`, `timeout` and `on_error` mean what they mean on `plano up`, by the
chain's own rules (chain.builtin_verdict, chain.fails_closed): the check is bounded by
the timeout (5s by default); a check that gives no verdict is answered 504 (timeout) or
502 under `fail_closed`, the default, and passes the body unchanged under `fail_open`;
under `mode: observe` the body always passes unchanged, and what the filter would have
done is logged and said in the `X-Plano-Filter-Observed` header (block, modify, error).

Input side only. An output filter over http sees one upstream chunk per call, so a value
cut across chunks would slip past and there is nowhere to put a held-back tail; and the
anonymize action's restore needs the request and its answer paired. Both work in-process
(`type: builtin` on `plano up`); here `anonymize` is refused at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from proxy.config.durations import parse_duration
from proxy.config.model import Filter, FilterType
from proxy.filters import texts
from proxy.filters.builtin import build_builtin, option_problems
from proxy.filters.builtin.base import BuiltinFilter
from proxy.filters.chain import builtin_verdict, fails_closed
from proxy.filters.record import capped
from proxy.filters.verdict import Decision, FilterFailure, Mode, OnError

log = logging.getLogger("plano.filters")

MAX_BODY = 32 * 1024 * 1024
DIRECTION = "input"  # what is served: the request side
OBSERVED_HEADER = "X-Plano-Filter-Observed"
MODES = tuple(Mode)
ON_ERROR = tuple(OnError)


class ServeError(Exception):
    """A filter that cannot be served; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Served:
    """One served filter: its entry's common keys (as the chain reads them), its built-in."""

    spec: Filter
    builtin: BuiltinFilter


def build_filters(entries: list[Mapping[str, Any]]) -> dict[str, Served]:
    """The built-ins of config `filters:` entries (others are skipped), by id."""
    filters: dict[str, Served] = {}
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
        spec = Filter(
            id=fid,
            type=FilterType.BUILTIN,
            kind=kind,
            timeout_s=_timeout(fid, entry),
            on_error=_one_of(fid, entry, "on_error", ON_ERROR),
            mode=_one_of(fid, entry, "mode", MODES) or "enforce",
        )
        filters[fid] = Served(spec, build_builtin(kind, entry))
    if not filters:
        raise ServeError("no built-in filter (type: builtin) to serve")
    return filters


def _timeout(fid: str, entry: Mapping[str, Any]) -> float | None:
    if "timeout" not in entry:
        return None
    seconds = parse_duration(entry["timeout"])
    if seconds is None or seconds <= 0:
        raise ServeError(
            f"filter {fid!r}: timeout must be a duration above 0 (500ms, 5s), "
            f"not {entry['timeout']!r}"
        )
    return seconds


def _one_of(fid: str, entry: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str | None:
    if key not in entry:
        return None
    if entry[key] not in allowed:
        choices = " or ".join(allowed)
        raise ServeError(f"filter {fid!r}: {key} must be {choices}, not {entry[key]!r}")
    return entry[key]


def make_app(filters: dict[str, Served]) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def handle(request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        served = filters.get(fid)
        if served is None:
            return _error(404, fid, f"no filter {fid!r} here; filters: {', '.join(filters)}")
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, fid, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, fid, "the request body is not a JSON object")
        spec = served.spec
        api = texts.api_for_path("/" + request.match_info["path"])
        try:
            # As on `plano up`: the cheap checks inline, the others in a worker thread, so
            # one big prompt does not stall the other requests; bounded by the timeout.
            verdict = await builtin_verdict(
                served.builtin, fid, raw, body, api, {}, spec.timeout_for(DIRECTION)
            )
        except FilterFailure as failure:
            return _failed(spec, failure, raw)
        if verdict.decision is Decision.ERROR:  # as the chain takes it: no verdict
            return _failed(spec, FilterFailure("error", verdict.message or "no verdict"), raw)
        if spec.mode == "observe":
            return _observed(spec, verdict.decision, verdict.message, raw)
        if verdict.decision is Decision.BLOCK:
            return _error(verdict.status or 400, fid, verdict.message or "blocked")
        out = verdict.body if verdict.decision is Decision.MODIFY and verdict.body else raw
        return web.Response(body=out, content_type="application/json")

    app.router.add_post("/{fid}/{path:.*}", handle)
    app.router.add_post("/{fid}", handle)
    app.router.add_get("/healthz", lambda _: web.json_response({"filters": list(filters)}))
    return app


def _failed(spec: Filter, failure: FilterFailure, raw: bytes) -> web.Response:
    """A check that gave no verdict: its on_error decides (an observed one passes)."""
    message = capped(failure.message)
    log.warning("filter %s: %s (%s)", spec.id, failure.outcome, message)
    if spec.mode == "observe":
        return _passed(raw, Decision.ERROR)
    if fails_closed(spec, DIRECTION):
        status = 504 if failure.outcome == "timeout" else 502
        return _error(status, spec.id, f"the filter failed ({failure.outcome}): {message}")
    return _passed(raw)


def _observed(spec: Filter, decision: Decision, message: str | None, raw: bytes) -> web.Response:
    """Observe mode: the body passes unchanged; what the filter would have done is said."""
    if decision is Decision.PASS:
        return _passed(raw)
    log.info("filter %s (observe): would %s: %s", spec.id, decision.value, capped(message or ""))
    return _passed(raw, decision)


def _passed(raw: bytes, observed: Decision | None = None) -> web.Response:
    """The client's body, as it came; `observed`: what an observed filter would have done."""
    headers = {OBSERVED_HEADER: observed.value} if observed is not None else None
    return web.Response(body=raw, content_type="application/json", headers=headers)


def _error(status: int, fid: str, message: str) -> web.Response:
    body = {
        "error": {
            "type": "filter_blocked" if status < 500 else "filter_error",
            "filter": fid,
            "message": message,
        }
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
