"""One LLM request, end to end: parse, resolve, call upstream (retry, fail over), reply.

Same format on both sides (an OpenAI client and an OpenAI-wire upstream) takes the
passthrough: the client's body is forwarded with only `model` rewritten, and the
upstream's bytes flow back as they came, tapped on the side for usage and first-token
time. Otherwise the request goes through the canonical model of proxy.canonical.

Retries and failover happen only before anything has been sent to the client. For a
stream that means: until the upstream's first event has arrived.

What the gateway holds of an answer is bounded (overrides.max_upstream_response_bytes):
a non-streaming answer it translates, a large one it passes through (see answer.py), and
one event of a stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from proxy.auth.edge import client_key_headers
from proxy.canonical import (
    ChatRequest,
    StreamError,
    TextDelta,
    ToolCallStart,
)
from proxy.config.model import Config, Listener
from proxy.config.model_index import Resolution
from proxy.config.redact import MASK, mask_key_like, redact_text
from proxy.filters.output import transform_response
from proxy.gateway.answer import (
    PASSTHROUGH_HOLD,
    declared_size,
    read_head,
    relay_answer,
    too_large_message,
)
from proxy.gateway.client_api import CODECS, ClientAPI
from proxy.gateway.core import ChatCore
from proxy.gateway.errors import ClientError
from proxy.gateway.exchange import Attempt, Exchange
from proxy.gateway.relay import Relay, answer_renderer, commit, filter_answer, finish, first_events
from proxy.gateway.resolve import PROVIDER_HINT_HEADER, UnknownModel, candidates, is_unpinned
from proxy.limits.enforce import RateLimiter, limit_headers
from proxy.providers.catalog import Wire
from proxy.routing.affinity import AFFINITY_HEADER
from proxy.routing.conversation import turns_from_messages
from proxy.routing.routes import RouteSpecError, routes_from_body, strip_routing_keys
from proxy.routing.service import RoutingDecision, RoutingService
from proxy.telemetry.hub import TRACE_ID_HEADER
from proxy.telemetry.tracecontext import new_span_id
from proxy.upstream.errors import describe, upstream_message
from proxy.upstream.retry import FAILOVER_STATUS, RETRYABLE_STATUS, Backoff
from proxy.upstream.targets import PASSTHROUGH_AUTH_HEADERS, Target, target_for
from proxy.wire.model_name import renamer
from proxy.wire.sse import SSEEventTooLarge, SSEParser

# Where the other modules have always found it: the edge and the Responses path import it.
__all__ = ["ClientError", "Failure", "Gateway"]

log = logging.getLogger("plano.gateway")

_JSON = "application/json"
# traceparent is not here: each upstream call gets its own, naming the call's span.
_FORWARDED_REQUEST_HEADERS = ("x-request-id", "anthropic-beta", "tracestate")
_MAX_ERROR_BODY = 64 * 1024


@dataclass(slots=True)
class Failure:
    """An attempt that produced nothing for the client."""

    status: int  # what the client would see if this were the last attempt
    outcome: str  # for the record: "HTTP 503", "connect error", ...
    message: str
    retryable: bool
    failover: bool
    retry_after: str | None = None


class Gateway(ChatCore):
    """The model listener's request handler; one per listener, shared by its requests."""

    def __init__(
        self,
        config: Config,
        listener: Listener,
        session: aiohttp.ClientSession,
        backoff: Backoff | None = None,
        router: RoutingService | None = None,
        limiter: RateLimiter | None = None,
    ):
        super().__init__(config, listener)
        self.session = session
        self.backoff = backoff or Backoff()
        self.router = router
        self.limiter = limiter  # None: no `ratelimits`
        self._max_answer = config.overrides.max_upstream_response_bytes
        self._targets: dict[tuple[str, str], Target] = {}
        # Exact credential values, masked in any text from a provider before it is shown.
        self._secrets = [
            p.access_key.reveal()
            for p in config.providers
            if p.access_key and len(p.access_key.reveal()) >= 6
        ]

    # --- entry point ------------------------------------------------------------------

    async def _serve(
        self,
        request: web.Request,
        api: ClientAPI,
        exchange: Exchange,
        body: dict,
        chat: ChatRequest,
    ) -> web.StreamResponse:
        try:
            body_routes = routes_from_body(body)
        except RouteSpecError as exc:
            raise ClientError(400, exc.message, exc.param) from None
        body = strip_routing_keys(body)
        hint = request.headers.get(PROVIDER_HINT_HEADER)
        unpinned = is_unpinned(self.config, chat.model)
        decision = None
        if (
            self.router is not None
            and not hint
            and (body_routes or (unpinned and self.router.routes))
        ):
            exchange.routing_started = time.perf_counter()
            decision = await self.route(request, chat, body_routes)
            exchange.routing_finished = time.perf_counter()
            exchange.routing = decision
        try:
            if decision is not None and decision.models:
                chain = self._route_chain(decision.models)
            else:
                chain = candidates(self.config, hint or (None if unpinned else chat.model))
        except UnknownModel as exc:
            raise ClientError(400, str(exc), "model") from None
        if self.limiter is None:
            return await self._run(request, api, exchange, body, chat, chain)
        # Budgets hold on the model the request goes to first, resolved: alias or route.
        admission = await self.limiter.admit(request, exchange, chat, chain[0].model)
        try:
            return await self._run(request, api, exchange, body, chat, chain)
        finally:
            if admission is not None:  # output tokens, once the answer (or stream) is over
                await asyncio.shield(self.limiter.settle(admission, exchange))

    async def route(
        self, request: web.Request, chat: ChatRequest, body_routes=None
    ) -> RoutingDecision:
        """Ask the router; it falls back itself, so this never fails the request."""
        turns = turns_from_messages(
            chat.messages, user_only_tail=self.config.routing.route_on_user_only
        )
        tenant_header = self.config.routing.session_cache.tenant_header
        return await self.router.decide(
            turns,
            body_routes,
            session=request.headers.get(AFFINITY_HEADER),
            tenant=request.headers.get(tenant_header) if tenant_header else None,
        )

    def _route_chain(self, models: tuple[str, ...]) -> list[Resolution]:
        """A route's models in policy order: the first serves, the rest are its failover."""
        chain: list[Resolution] = []
        for name in models:
            resolved = self.config.models.resolve(name)
            if resolved is None or resolved.model_id == "*":
                log.warning("route model %s is not a configured provider; skipped", name)
                continue
            if resolved.model not in {c.model for c in chain}:
                chain.append(resolved)
        return chain or candidates(self.config, None)

    async def _run(
        self,
        request,
        api: ClientAPI,
        exchange: Exchange,
        body: dict,
        chat: ChatRequest,
        chain: list[Resolution],
    ) -> web.StreamResponse:
        failures: list[tuple[Resolution, Failure]] = []
        for resolution in chain:
            target = self._target(resolution)
            same_wire = target.wire is api.wire
            payload = self._payload(api, body, chat, resolution, target, same_wire)
            headers = self._headers(request, target)
            provider = resolution.provider.provider
            for attempt in range(1, self.listener.max_retries + 2):
                span_id = new_span_id()
                if exchange.trace is not None:
                    # Each call is its own plano(llm) span: the upstream's spans hang off it.
                    headers = {**headers, "traceparent": exchange.trace.traceparent(span_id)}
                started = time.perf_counter()
                result = await self._attempt(
                    request,
                    api,
                    exchange,
                    target,
                    resolution,
                    payload,
                    headers,
                    chat.stream,
                    same_wire,
                    body,
                )
                elapsed = time.perf_counter() - started
                outcome = "ok" if not isinstance(result, Failure) else result.outcome
                exchange.attempts.append(
                    Attempt(resolution.model, outcome, elapsed, provider, span_id, started)
                )
                if not isinstance(result, Failure):
                    if self.router is not None:  # what `prefer: fastest` ranks by
                        self.router.latencies.observe(resolution.model, elapsed)
                    return result
                log.info(
                    "upstream %s failed (%s), attempt %d", resolution.model, result.outcome, attempt
                )
                if not result.retryable or attempt > self.listener.max_retries:
                    break
                delay = self.backoff.delay(attempt, result.retry_after)
                if delay is None:  # asked to wait longer than is worth it: next model
                    break
                await asyncio.sleep(delay)
            failures.append((resolution, result))
            if not result.failover:
                break
        raise _exhausted(failures)

    # --- one attempt --------------------------------------------------------------------

    async def _attempt(
        self, request, api, exchange, target, resolution, payload, headers, stream, same_wire, body
    ) -> web.StreamResponse | Failure:
        try:
            upstream = await self.session.post(
                target.url,
                data=payload,
                headers=headers,
                timeout=self._timeout_stream if stream else self._timeout_json,
            )
        except aiohttp.ConnectionTimeoutError:
            return Failure(
                504, "connect timeout", f"{resolution.model}: timed out connecting", True, True
            )
        except TimeoutError:
            # The provider took the request and did not answer in time: trying it again
            # could bill the generation twice, so only another model is tried.
            return Failure(504, "timeout", f"{resolution.model}: timed out", False, True)
        except aiohttp.ClientError as exc:
            return Failure(
                502,
                "connect error",
                self._mask(f"{resolution.model}: {describe(exc)}"),
                True,
                True,
            )
        try:
            if upstream.status >= 400:
                failure = await _status_failure(upstream, resolution)
                failure.message = self._mask(failure.message)
                return failure
            exchange.model, exchange.provider = _answered(resolution), resolution.provider.provider
            exchange.passthrough = same_wire
            if stream:
                return await self._stream(
                    request, api, exchange, target, resolution, upstream, same_wire, body
                )
            return await self._json(
                request, api, exchange, target, resolution, upstream, same_wire, body
            )
        except TimeoutError:
            return Failure(504, "timeout", f"{resolution.model}: timed out reading", False, True)
        except aiohttp.ClientError as exc:
            return Failure(502, "read error", f"{resolution.model}: {describe(exc)}", True, True)
        finally:
            upstream.release()  # back to the pool when fully read, closed otherwise

    async def _json(self, request, api, exchange, target, resolution, upstream, same_wire, body):
        limit = self._max_answer
        declared = declared_size(upstream)
        if declared is not None and declared > limit:
            return self._too_large(resolution)
        # Passed through, an answer is held only while small; translating it needs all of
        # it, and so does rewriting its text.
        whole = not same_wire or (exchange.filters is not None and exchange.filters.rewrites_answer)
        hold = limit if whole else min(limit, PASSTHROUGH_HOLD)
        raw, complete = await read_head(upstream.content, hold)
        if not complete:
            if whole:
                return self._too_large(resolution)
            response = web.StreamResponse(
                status=200, headers={"Content-Type": _JSON, **self._reply_headers(exchange)}
            )
            # The model is named before the content: in the head, renamed as x-plano-model.
            head = renamer(exchange.model).body(bytes(raw))
            if declared is not None and (
                exchange.filters is None or not exchange.filters.has_output
            ):
                # Output filters may change the pieces' sizes: then it is sent chunked.
                response.content_length = declared - len(raw) + len(head)
            parse_usage = CODECS[target.wire].parse_usage
            await relay_answer(
                request, response, exchange, upstream, head, limit, resolution.model, parse_usage
            )
            return response
        try:
            parsed = orjson.loads(raw)
            response = CODECS[target.wire].parse_response(parsed)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
            return Failure(
                502,
                "malformed response",
                f"{resolution.model}: the provider sent a malformed response",
                True,
                True,
            )
        exchange.mark_first_token()
        exchange.usage = response.usage
        exchange.result = response
        exchange.status = 200
        transform = exchange.filters.transform() if exchange.filters is not None else None
        if transform is not None:
            transform_response(response, transform)  # then rendered: no bytes passed through
        if not same_wire or transform is not None:
            raw = orjson.dumps(api.render_response(response, exchange.model, body))
        else:
            raw = renamer(exchange.model).body(bytes(raw))  # as x-plano-model says
        try:
            raw = await filter_answer(exchange, raw)
        except ClientError as exc:
            # The model answered (its call stays on the record); an output filter stopped
            # the answer: the client gets the filter's error instead.
            exchange.status, exchange.error = exc.status, exc.message
            return web.Response(
                body=orjson.dumps(api.render_error(exc.status, exc.message)),
                status=exc.status,
                content_type=_JSON,
                headers=self._reply_headers(exchange),
            )
        if exchange.capture:
            exchange.keep_response_chunk(raw)  # at most its first MiB, as for streams
        return web.Response(
            body=raw, status=200, content_type=_JSON, headers=self._reply_headers(exchange)
        )

    def _too_large(self, resolution: Resolution) -> Failure:
        # Not retried: the same model would most likely send as much again, and each try is
        # a paid generation. Another model may answer within the bound.
        return Failure(
            502, "too large", too_large_message(resolution.model, self._max_answer), False, True
        )

    async def _stream(
        self, request, api, exchange, target, resolution, upstream, same_wire, body
    ) -> web.StreamResponse | Failure:
        sse = SSEParser(self._max_answer)
        tap = CODECS[target.wire].StreamParser()  # canonical view, for usage and errors
        renderer = answer_renderer(api, exchange, exchange.model, body, same_wire)
        drop_usage_chunk = (
            same_wire
            and api.wire is Wire.OPENAI
            and not (CODECS[api.wire].wants_usage_in_stream(body))
        )
        chunks = upstream.content.iter_any()

        try:
            # The read timeout is per socket read: a provider dripping a byte at a time
            # would keep the client waiting, with nothing sent, without end.
            async with asyncio.timeout(self.listener.timeout_s):
                first = await first_events(chunks, sse)
        except SSEEventTooLarge:
            return self._too_large(resolution)
        except TimeoutError:
            # Like a JSON answer that times out: the provider took the request, so only
            # another model is tried (the same one could bill it twice).
            return Failure(
                504,
                "timeout",
                f"{resolution.model}: no stream event within {self.listener.timeout_s:g} s",
                False,
                True,
            )
        if isinstance(first, str):
            return Failure(502, "stream error", f"{resolution.model}: {first}", True, True)
        # Parsed once, by the tap: the relay reuses these instead of parsing them again.
        first_parsed = [(event, tap.feed(event)) for event in first]
        early = [item for _, items in first_parsed for item in items]
        if any(isinstance(e, StreamError) for e in early) and not any(
            isinstance(e, TextDelta | ToolCallStart) for e in early
        ):
            # An error before any content (Anthropic's overloaded_error comes with a 200):
            # nothing has reached the client yet, so it is retried like a status error.
            error = next(e for e in early if isinstance(e, StreamError))
            return Failure(
                502,
                "stream error",
                self._mask(f"{resolution.model}: {redact_text(error.message)}"),
                True,
                True,
            )

        response = await commit(request, exchange, self._reply_headers(exchange))
        relay = Relay(
            response, exchange, tap, renderer, drop_usage_chunk, renamer(exchange.model), self._mask
        )
        if api.holds_stream:
            relay.max_held = self._max_answer
        source = f"upstream {resolution.model}"
        await finish(
            relay, first_parsed, chunks, sse, api, exchange.model, source, resolution.model
        )
        return response

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    # --- request shaping ----------------------------------------------------------------

    def _target(self, resolution: Resolution) -> Target:
        key = (resolution.provider.name, resolution.model_id)
        target = self._targets.get(key)
        if target is None:
            target = self._targets[key] = target_for(resolution.provider, resolution.model_id)
        return target

    def _payload(self, api, body, chat, resolution, target, same_wire) -> bytes:
        if same_wire:
            forwarded = dict(body)
            forwarded["model"] = resolution.model_id
            if chat.stream and api.wire is Wire.OPENAI:
                # Ask for usage so it can be recorded; the chunk is dropped again if the
                # client did not ask for it itself.
                forwarded["stream_options"] = {
                    **(body.get("stream_options") or {}),
                    "include_usage": True,
                }
            return orjson.dumps(target.adjust_request(forwarded))
        built = CODECS[target.wire].build_request(chat, resolution.model_id)
        return orjson.dumps(target.adjust_request(built))

    def _headers(self, request: web.Request, target: Target) -> dict[str, str]:
        headers = {"Content-Type": _JSON, **target.headers}
        for name in _FORWARDED_REQUEST_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
        if target.passthrough_auth:
            plano_keys = client_key_headers(request)  # the client's key to Plano stays here
            for name in PASSTHROUGH_AUTH_HEADERS:
                value = request.headers.get(name)
                if value is not None and name not in plano_keys:
                    headers[name] = value
        return headers

    def _reply_headers(self, exchange: Exchange) -> dict[str, str]:
        headers = {"x-request-id": exchange.request_id, "x-plano-model": exchange.model or ""}
        if exchange.trace is not None:
            headers[TRACE_ID_HEADER] = exchange.trace.trace_id
        if exchange.routing is not None:
            # Route names are printable but may be non-ASCII: headers carry them %-encoded.
            headers["x-plano-route"] = quote(exchange.routing.route or "", safe=" _-.:/+")
        if exchange.ratelimit is not None:
            headers.update(limit_headers(exchange.ratelimit))
        return headers


def _answered(resolution: Resolution) -> str:
    """The name of the model that answers, for x-plano-model, the answer's `model`, logs and
    traces. A wildcard provider's model id is the client's: a key sent there stays masked."""
    if resolution.provider.is_wildcard:
        return mask_key_like(resolution.model)
    return resolution.model


async def _status_failure(upstream: aiohttp.ClientResponse, resolution: Resolution) -> Failure:
    raw = await upstream.content.read(_MAX_ERROR_BODY)
    message = upstream_message(raw) or upstream.reason or "error"
    return Failure(
        upstream.status,
        f"HTTP {upstream.status}",
        f"{resolution.model}: HTTP {upstream.status}: {redact_text(message)}",
        upstream.status in RETRYABLE_STATUS,
        upstream.status in FAILOVER_STATUS,
        upstream.headers.get("Retry-After"),
    )


def _exhausted(failures: list[tuple[Resolution, Failure]]) -> ClientError:
    last = failures[-1][1]
    statuses = {f.status for _, f in failures}
    if not last.failover:
        status = last.status  # the provider refused the request itself (400, 413, 422)
    elif statuses in ({429}, {504}):
        status = last.status  # rate limited or timed out everywhere: say so
    else:
        status = 502
    retry_after = last.retry_after if status in (429, 503) else None
    if len(failures) == 1:
        return ClientError(status, last.message, retry_after=retry_after)
    tried = "; ".join(f.message for _, f in failures)
    return ClientError(
        status, f"all {len(failures)} candidate models failed: {tried}", retry_after=retry_after
    )
