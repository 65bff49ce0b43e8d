"""Filter chains: a listener's filters, run in order on requests (and, with
proxy.filters.output, on answers).

A `FilterSet` is built once per listener at start-up: one runner per filter it uses (an
http or MCP transport, or a built-in), sharing one pooled session. Per request,
`RequestFilters` (kept on the Exchange) runs the input chain on the raw body before the
request is parsed, and keeps what the answer needs: the built-ins' per-request state and
the answer transforms they leave (PII placeholders to restore), and the output run.

Each filter call is a plano(filter) step. Its verdict is applied in `enforce` mode; in
`observe` mode it is only recorded (a block with its message, a change with a diff
summary) and the body goes on unchanged. A call that gives no verdict is an error: under
`fail_closed` the client gets a 502 (504 for a timeout) naming the filter, under
`fail_open` the request goes on as if the filter had passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from proxy.agents.call import forwarded_headers
from proxy.auth.edge import client_key_headers
from proxy.config.model import Config, Filter, FilterType, Listener
from proxy.config.redact import MASK, redact_text
from proxy.filters import record
from proxy.filters.builtin.common import DEADLINE, DeadlinePassed
from proxy.filters.errors import FilterBlocked, FilterErrored
from proxy.filters.http_transport import MAX_BLOCK_TEXT, HttpTransport
from proxy.filters.output import Chained, OutputRun, WatchedTransform
from proxy.filters.verdict import Decision, FilterFailure, Verdict
from proxy.gateway.exchange import Exchange, Step
from proxy.server.client_input import MAX_BODY_BYTES, MAX_JSON_DEPTH, nested_deeper_than

if TYPE_CHECKING:
    from aiohttp import web

    from proxy.filters.builtin.base import AnswerTransform, BuiltinFilter

log = logging.getLogger("plano.filters")

UPSTREAM_HEADER = "x-arch-upstream"  # upstream's: which filter (cluster) a call is for
AGENT_PATH = "/v1/chat/completions"  # what agents are sent, and so what their filters see
AGENT_API = "agent"  # the built-ins' name for an agent's {"model", "messages"} body
# The request's credentials: forwarded to filters (as upstream does), never shown.
_SECRET_HEADERS = ("authorization", "x-api-key", "api-key", "proxy-authorization")
_MIN_SECRET = 6
# A built-in checks a body up to its `inline_bytes` on the event loop, a larger one in a
# worker thread (a 32 MiB prompt takes the injection detector seconds); this size for a
# built-in that does not say.
INLINE_BUILTIN_BYTES = 64 * 1024


def _builtin_factory(kind: str, options: Mapping[str, Any]) -> BuiltinFilter:
    # Imported on first use: a config without built-ins never loads them.
    from proxy.filters.builtin import build_builtin

    return build_builtin(kind, options)


def _mcp_transport(url: str, tool: str) -> Any:
    from proxy.filters.mcp_transport import McpFilterTransport

    return McpFilterTransport(url, tool)


# Module attributes, so a test can stand in a built-in of its own.
builtin_factory: Callable[[str, Mapping[str, Any]], BuiltinFilter] = _builtin_factory
mcp_factory: Callable[[str, str], Any] = _mcp_transport


class FilterRunner:
    """One configured filter, ready to call: a transport, or a built-in."""

    __slots__ = ("builtin", "spec", "transport")

    def __init__(self, spec: Filter, session: aiohttp.ClientSession, max_reply: int):
        self.spec = spec
        self.transport: Any = None
        self.builtin: BuiltinFilter | None = None
        if spec.type is FilterType.HTTP:
            self.transport = HttpTransport(spec.url, session, max_reply)
        elif spec.type is FilterType.MCP:
            self.transport = mcp_factory(spec.url, spec.tool)
        else:
            self.builtin = builtin_factory(spec.kind, spec.options)

    async def verdict(
        self,
        body: bytes,
        parsed: dict | None,
        path: str,
        headers: Mapping[str, str],
        timeout: float,
        api: str,
        state: dict,
    ) -> Verdict:
        """The filter's verdict on `body`; raises FilterFailure when it gives none."""
        if self.builtin is not None:
            return await builtin_verdict(
                self.builtin, self.spec.id, body, parsed, api, state, timeout
            )
        try:
            # The transport bounds its call too; this bounds whatever it does around it.
            async with asyncio.timeout(timeout):
                return await self.transport.call(body, path, headers, timeout)
        except TimeoutError:
            raise FilterFailure("timeout", f"no answer within {timeout:g}s") from None
        except FilterFailure:
            raise
        except Exception as exc:
            log.warning("filter %s failed: %s", self.spec.id, type(exc).__name__)
            raise FilterFailure("error", f"the call failed: {type(exc).__name__}") from None

    def warm(self) -> None:
        """Load what a built-in would load on its first request (the injection encoder)."""
        warm = getattr(self.builtin, "warm", None)  # a test's stand-in may have none
        if warm is None:
            return
        try:
            warm()
        except Exception:  # the requests' calls fail then, and the filter's on_error decides
            log.exception("loading built-in filter %s", self.spec.id)

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()


async def builtin_verdict(
    builtin: BuiltinFilter,
    filter_id: str,
    body: bytes,
    parsed: dict | None,
    api: str,
    state: dict,
    timeout: float,
) -> Verdict:
    """A built-in's verdict on `body` (`parsed`: its JSON, when already read): on the event
    loop up to the built-in's `inline_bytes`, else in a worker thread bounded by `timeout`.
    Raises FilterFailure when it gives none. `plano filters serve` calls it too."""
    try:
        document = parsed if parsed is not None else orjson.loads(body)
        if len(body) <= getattr(builtin, "inline_bytes", INLINE_BUILTIN_BYTES):
            return builtin.check_request(document, api, state)
        return await _in_thread(builtin, document, api, state, timeout)
    except (TimeoutError, DeadlinePassed):
        raise FilterFailure("timeout", f"no verdict within {timeout:g}s") from None
    except Exception as exc:  # a built-in's bug must not become a 500
        log.exception("built-in filter %s failed", filter_id)
        raise FilterFailure("error", f"the built-in failed: {type(exc).__name__}") from None


async def _in_thread(
    builtin: BuiltinFilter, document: Any, api: str, state: dict, timeout: float
) -> Verdict:
    """A check off the event loop, bounded by the filter's timeout (the built-in stops at
    the deadline too, not to burn a core for nothing)."""
    token = DEADLINE.set(time.monotonic() + timeout)  # copied to the thread's context
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(builtin.check_request, document, api, state)
    finally:
        DEADLINE.reset(token)


def fails_closed(spec: Filter, direction: str) -> bool:
    """Whether a call of the filter that gives no verdict stops the request."""
    return spec.on_error_for(direction) == "fail_closed" and spec.mode != "observe"


class FilterSet:
    """A listener's filters, built once at start-up."""

    def __init__(self, config: Config, listener: Listener, session: aiohttp.ClientSession) -> None:
        self.listener = listener
        self.session = session
        # A filter's reply may be as large as what it was sent: a request, or an answer.
        max_reply = max(MAX_BODY_BYTES, config.overrides.max_upstream_response_bytes)
        by_id = {spec.id: spec for spec in config.filters}
        self.runners = {
            fid: FilterRunner(by_id[fid], session, max_reply) for fid in used_filters(listener)
        }
        self.input = tuple(self.runners[fid] for fid in listener.input_filters)
        output = [self.runners[fid] for fid in listener.output_filters]
        # Output filters over the wire see the answer's bytes; built-ins rewrite its text
        # (their `answer({})`: a transform of the canonical text, streams and JSON alike).
        self.output = tuple(r for r in output if r.builtin is None)
        self.output_builtins = tuple(r for r in output if r.builtin is not None)
        self.agent_input = {
            agent.id: tuple(self.runners[fid] for fid in agent.input_filters)
            for agent in listener.agents
            if agent.input_filters
        }

    def warm(self) -> None:
        """The built-ins' lazy loads, done now: call it at start-up, off the event loop."""
        for runner in self.runners.values():
            runner.warm()

    def start(self, request: web.Request, api: str, exchange: Exchange) -> RequestFilters:
        filters = RequestFilters(self, request, api, exchange)
        exchange.filters = filters
        return filters

    async def close(self) -> None:
        for runner in self.runners.values():
            try:
                await runner.close()
            except Exception:  # one filter's close must not keep the others open
                log.exception("closing filter %s", runner.spec.id)


def used_filters(listener: Listener) -> list[str]:
    """The filter ids a listener runs, each once, in the order first named."""
    ids = [*listener.input_filters, *listener.output_filters]
    for agent in listener.agents:
        ids += agent.input_filters
    return list(dict.fromkeys(ids))


class RequestFilters:
    """One request's filtering: its input chain, and what its answer needs."""

    def __init__(self, filters: FilterSet, request: web.Request, api: str, exchange: Exchange):
        self.filters = filters
        self.request = request
        self.api = api
        self.exchange = exchange
        self.states: dict[str, dict] = {}  # per built-in filter: its scratch space
        self.transforms: list[AnswerTransform] = []
        self.output: OutputRun | None = None
        self._headers: dict[str, str] | None = None
        self._secrets: list[str] | None = None
        self._transformed: set[str] = set()  # filters whose answer transform is kept
        self._transform: AnswerTransform | None = None

    # --- input ------------------------------------------------------------------------

    async def request_body(self, raw: bytes, body: dict) -> tuple[bytes, dict]:
        """The listener's input chain on the client's request."""
        return await self.run_input(self.filters.input, raw, body, self.request.path, self.api)

    async def agent_body(self, agent_id: str, payload: bytes) -> bytes:
        """An agent's input chain on the body it is about to be sent."""
        runners = self.filters.agent_input.get(agent_id)
        if not runners:
            return payload
        raw, _ = await self.run_input(runners, payload, None, AGENT_PATH, AGENT_API, agent_id)
        return raw

    async def run_input(
        self,
        runners: tuple[FilterRunner, ...],
        raw: bytes,
        body: dict | None,
        path: str,
        api: str,
        target: str | None = None,
    ) -> tuple[bytes, dict]:
        """Run the chain in order; each enforced change is what the next filter sees.
        Raises FilterBlocked or FilterErrored."""
        for runner in runners:
            spec = runner.spec
            step = record.new_step(self.exchange, spec, "input", target)
            result = await self.call(runner, step, "input", raw, body, path, api)
            if isinstance(result, FilterFailure):
                self.failed(step, spec, "input", result)
                continue
            observe = spec.mode == "observe"
            if result.decision is Decision.MODIFY:
                new_raw, new_body = self._request_of(spec, result, step)
                if new_body is not None:
                    record.modified(step, raw, new_raw)
                    if not observe:
                        raw, body = new_raw, new_body
            elif result.decision is Decision.BLOCK:
                text = redact_text(self.mask(result.message or ""), MAX_BLOCK_TEXT)
                record.blocked(step, text)
                if not observe:
                    raise FilterBlocked(spec.id, result.status or 400, text)
            if spec.type is FilterType.BUILTIN and not observe:
                self._keep_transform(runner)
        if body is None:
            body = orjson.loads(raw)
        return raw, body

    def _request_of(self, spec: Filter, result: Verdict, step: Step) -> tuple[bytes, dict | None]:
        """The replacement body, checked as the edge checks a client's; a filter that
        sends something else failed (and its on_error decides)."""
        new_raw = result.body or b""
        problem = _body_problem(new_raw)
        if problem is None:
            return new_raw, orjson.loads(new_raw)
        self.failed(step, spec, "input", FilterFailure("malformed reply", problem, result.status))
        return new_raw, None

    def _keep_transform(self, runner: FilterRunner) -> None:
        fid = runner.spec.id
        state = self.states.get(fid)
        # One transform per filter and request, though several agents' inputs ran it.
        if state is None or runner.builtin is None or fid in self._transformed:
            return
        transform = runner.builtin.answer(state)
        if transform is not None:
            self._transformed.add(fid)
            self.transforms.append(transform)

    # --- one call, whatever the direction ---------------------------------------------

    async def call(
        self,
        runner: FilterRunner,
        step: Step,
        direction: str,
        raw: bytes,
        parsed: dict | None,
        path: str,
        api: str,
        content_type: str = "application/json",
    ) -> Verdict | FilterFailure:
        """Call the filter; the decision is recorded on the step, the time added to it."""
        spec = runner.spec
        state = self.states.setdefault(spec.id, {}) if runner.builtin is not None else {}
        headers = {
            **self.headers(),
            "Content-Type": content_type,
            UPSTREAM_HEADER: spec.id,
        }
        trace = self.exchange.trace
        if trace is not None:
            headers["traceparent"] = trace.traceparent(step.span_id)
        started = time.perf_counter()
        try:
            verdict = await runner.verdict(
                raw, parsed, path, headers, spec.timeout_for(direction), api, state
            )
        except FilterFailure as exc:
            exc.message = self.mask(exc.message)
            return exc
        finally:
            step.seconds += time.perf_counter() - started
        if verdict.decision is Decision.ERROR:  # a transport may say so instead of raising
            return FilterFailure("error", self.mask(verdict.message or "no verdict"))
        applied = spec.mode != "observe"
        record.decided(step, verdict.decision.value, applied, verdict.status)
        return verdict

    def failed(self, step: Step, spec: Filter, direction: str, failure: FilterFailure) -> None:
        """Record a call that gave no verdict; raise FilterErrored when it fails closed."""
        closed = fails_closed(spec, direction)
        record.decided(step, Decision.ERROR.value, closed, failure.status)
        record.failed(step, failure.outcome, failure.message)
        # Redacted as on the span: a transport's error text may quote what it was sent.
        log.info("filter %s: %s (%s)", spec.id, failure.outcome, record.capped(failure.message))
        if closed:
            raise FilterErrored(spec.id, failure.outcome, failure.message)

    # --- what every call of the request shares ----------------------------------------

    def headers(self) -> dict[str, str]:
        """The client's headers as filters get them (upstream forwards them), computed once."""
        if self._headers is None:
            # Less any header that held a client key to Plano: that key goes nowhere.
            self._headers = forwarded_headers(
                self.request.headers,
                self.exchange.request_id,
                dropped=client_key_headers(self.request),
            )
        return self._headers

    def mask(self, text: str) -> str:
        """A filter's text with the request's own credentials masked (a filter may echo
        the headers it was sent)."""
        if self._secrets is None:
            self._secrets = _request_secrets(self.request.headers)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    @property
    def rewrites_answer(self) -> bool:
        """Whether the answer's text is rewritten (so it is rendered, not passed through):
        an input built-in left a transform, or a built-in is among the output filters."""
        return bool(self.transforms) or bool(self.filters.output_builtins)

    def transform(self) -> AnswerTransform | None:
        """The answer's text rewriting, made once per request (None: there is none): the
        input built-ins' transforms (PII placeholders restored), then the output
        built-ins', in the order the filters are listed."""
        if self._transform is None:
            transforms = list(self.transforms)
            for runner in self.filters.output_builtins:
                made = runner.builtin.answer({}) if runner.builtin is not None else None
                if made is not None:
                    transforms.append(WatchedTransform(made, self, runner.spec))
            if not transforms:
                return None
            self._transform = transforms[0] if len(transforms) == 1 else Chained(transforms)
        return self._transform

    @property
    def has_output(self) -> bool:
        """Whether output filters see the answer's bytes (http, mcp)."""
        return bool(self.filters.output)

    def output_run(self) -> OutputRun | None:
        """The answer's pass through the output filters (one per request), or None."""
        if self.output is None and self.filters.output:
            self.output = OutputRun(self, self.filters.output)
        return self.output


def _body_problem(raw: bytes) -> str | None:
    """Why a filter's replacement cannot be the request, or None."""
    if len(raw) > MAX_BODY_BYTES:
        return f"returned a body larger than {MAX_BODY_BYTES} bytes"
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "returned a body that is not JSON"
    if not isinstance(body, dict):
        return "returned JSON that is not an object"
    if nested_deeper_than(raw, MAX_JSON_DEPTH):
        return f"returned JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return None


def _request_secrets(headers: Mapping[str, str]) -> list[str]:
    secrets: list[str] = []
    for name in _SECRET_HEADERS:
        value = headers.get(name)
        if not value:
            continue
        token = value.split(None, 1)[-1]  # "Bearer sk-..." -> the key itself too
        secrets += [v for v in (value, token) if len(v) >= _MIN_SECRET]
    return sorted(set(secrets), key=len, reverse=True)
