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
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from proxy.canonical import (
    ChatRequest,
    Finish,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageReport,
    WireError,
)
from proxy.config.model import Config, Listener
from proxy.config.model_index import Resolution
from proxy.config.redact import MASK, mask_key_like, redact_text
from proxy.gateway.answer import (
    PASSTHROUGH_HOLD,
    declared_size,
    read_head,
    relay_answer,
    too_large_message,
)
from proxy.gateway.client_api import CODECS, ClientAPI
from proxy.gateway.exchange import Attempt, Exchange
from proxy.gateway.inflight import SHUTDOWN_MESSAGE, InFlight, absorb_shutdown
from proxy.gateway.resolve import PROVIDER_HINT_HEADER, UnknownModel, candidates, is_unpinned
from proxy.providers.catalog import Wire
from proxy.routing.affinity import AFFINITY_HEADER
from proxy.routing.conversation import turns_from_messages
from proxy.routing.routes import RouteSpecError, routes_from_body, strip_routing_keys
from proxy.routing.service import RoutingDecision, RoutingService
from proxy.telemetry.hub import TRACE_ID_HEADER
from proxy.telemetry.tracecontext import new_span_id
from proxy.upstream.retry import FAILOVER_STATUS, RETRYABLE_STATUS, Backoff
from proxy.upstream.targets import PASSTHROUGH_AUTH_HEADERS, Target, target_for
from proxy.wire.model_name import ModelRenamer, renamer
from proxy.wire.sse import SSEEvent, SSEEventTooLarge, SSEParser, format_sse

log = logging.getLogger("plano.gateway")

_JSON = "application/json"
# traceparent is not here: each upstream call gets its own, naming the call's span.
_FORWARDED_REQUEST_HEADERS = ("x-request-id", "anthropic-beta", "tracestate")
_MAX_ERROR_BODY = 64 * 1024


class ClientError(Exception):
    """Something the client must fix: rendered in its API's error shape."""

    def __init__(
        self, status: int, message: str, param: str | None = None, retry_after: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.retry_after = retry_after  # passed on, so SDKs back off instead of hammering


@dataclass(slots=True)
class Failure:
    """An attempt that produced nothing for the client."""

    status: int  # what the client would see if this were the last attempt
    outcome: str  # for the record: "HTTP 503", "connect error", ...
    message: str
    retryable: bool
    failover: bool
    retry_after: str | None = None


class _ClientGone(Exception):
    """The client disconnected while we were writing to it."""


class _StreamTooLarge(ValueError):
    """A stream whose whole answer the gateway keeps (Responses API) grew past the limit."""

    def __init__(self, limit: int):
        super().__init__(f"more than {limit} bytes of answer")


class Gateway:
    """The model listener's request handler; one per listener, shared by its requests."""

    def __init__(
        self,
        config: Config,
        listener: Listener,
        session: aiohttp.ClientSession,
        backoff: Backoff | None = None,
        router: RoutingService | None = None,
    ):
        self.config = config
        self.listener = listener
        self.session = session
        self.backoff = backoff or Backoff()
        self.router = router
        # What is being served, for the shutdown to wait on and, at its bound, end.
        self.inflight = InFlight()
        self._max_answer = config.overrides.max_upstream_response_bytes
        self._targets: dict[tuple[str, str], Target] = {}
        # Exact credential values, masked in any text from a provider before it is shown.
        self._secrets = [
            p.access_key.reveal()
            for p in config.providers
            if p.access_key and len(p.access_key.reveal()) >= 6
        ]
        connect = config.overrides.upstream_connect_timeout_s
        self._timeout_json = aiohttp.ClientTimeout(total=listener.timeout_s, sock_connect=connect)
        # A stream may run long; what must not happen is a long silence.
        self._timeout_stream = aiohttp.ClientTimeout(
            total=None, sock_connect=connect, sock_read=listener.timeout_s
        )

    # --- entry point ------------------------------------------------------------------

    async def handle(
        self, request: web.Request, api: ClientAPI, exchange: Exchange, body: dict
    ) -> web.StreamResponse:
        try:
            chat = api.parse_request(body)
        except WireError as exc:
            raise ClientError(400, exc.message, exc.param) from None
        return await self.run_chat(request, api, exchange, body, chat)

    async def run_chat(
        self,
        request: web.Request,
        api: ClientAPI,
        exchange: Exchange,
        body: dict,
        chat: ChatRequest,
    ) -> web.StreamResponse:
        """Resolve the model and serve an already parsed request."""
        task = self.inflight.add(exchange)
        try:
            return await self._serve(request, api, exchange, body, chat)
        except asyncio.CancelledError:
            if not absorb_shutdown(exchange):
                raise  # the client went away
            # Nothing was sent yet (a stream under way answers for itself): say why.
            raise ClientError(503, SHUTDOWN_MESSAGE) from None
        finally:
            self.inflight.discard(task)

    async def _serve(
        self,
        request: web.Request,
        api: ClientAPI,
        exchange: Exchange,
        body: dict,
        chat: ChatRequest,
    ) -> web.StreamResponse:
        # For the access log, spans and the store: a key sent as the model stays masked.
        exchange.requested_model = mask_key_like(chat.model) if chat.model else chat.model
        exchange.stream = chat.stream
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
        return await self._run(request, api, exchange, body, chat, chain)

    async def route(
        self, request: web.Request, chat: ChatRequest, body_routes=None
    ) -> RoutingDecision:
        """Ask the router; it falls back itself, so this never fails the request."""
        turns = turns_from_messages(
            chat.messages, user_only_tail=self.config.routing.route_on_user_only
        )
        return await self.router.decide(
            turns, body_routes, session=request.headers.get(AFFINITY_HEADER)
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
                self._mask(f"{resolution.model}: {_describe(exc)}"),
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
            return Failure(502, "read error", f"{resolution.model}: {_describe(exc)}", True, True)
        finally:
            upstream.release()  # back to the pool when fully read, closed otherwise

    async def _json(self, request, api, exchange, target, resolution, upstream, same_wire, body):
        limit = self._max_answer
        declared = declared_size(upstream)
        if declared is not None and declared > limit:
            return self._too_large(resolution)
        # Translating needs the whole answer; passed through, it is held only while small.
        hold = min(limit, PASSTHROUGH_HOLD) if same_wire else limit
        raw, complete = await read_head(upstream.content, hold)
        if not complete:
            if not same_wire:
                return self._too_large(resolution)
            response = web.StreamResponse(
                status=200, headers={"Content-Type": _JSON, **self._reply_headers(exchange)}
            )
            # The model is named before the content: in the head, renamed as x-plano-model.
            head = renamer(exchange.model).body(bytes(raw))
            if declared is not None:
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
        if not same_wire:
            raw = orjson.dumps(api.render_response(response, exchange.model, body))
        else:
            raw = renamer(exchange.model).body(bytes(raw))  # as x-plano-model says
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
        renderer = None if same_wire else api.stream_renderer(exchange.model, body)
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
                first = await _first_events(chunks, sse)
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

        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                **self._reply_headers(exchange),
            },
        )
        await response.prepare(request)
        exchange.status = 200
        relay = _Relay(
            response, exchange, tap, renderer, drop_usage_chunk, renamer(exchange.model), self._mask
        )
        if api.holds_stream:
            relay.max_held = self._max_answer
        # The client already has a 200 and part of the answer: whatever ends the stream now
        # ends it with an error event in the client's own format, so SDKs raise instead of
        # hanging or taking a cut stream for a whole one; the record says why.
        try:
            await relay.emit(first_parsed)
            async for chunk in chunks:
                await relay.events(sse.feed(chunk))
            await relay.events(sse.flush())
            if not relay.finished:
                raise aiohttp.ClientPayloadError("the stream ended before the response did")
            await relay.close()
        except _ClientGone:
            exchange.status, exchange.error = 499, "client disconnected"
        except (aiohttp.ClientError, TimeoutError) as exc:
            exchange.error = f"{resolution.model}: {_describe(exc)}"
            await relay.fail(
                api,
                exchange.model,
                f"upstream {resolution.model} failed mid-stream: {_describe(exc)}",
            )
        except (SSEEventTooLarge, _StreamTooLarge) as exc:
            exchange.error = f"{resolution.model}: sent {exc}"
            await relay.fail(
                api,
                exchange.model,
                f"upstream {resolution.model} sent {exc} (overrides.max_upstream_response_bytes)",
            )
        except asyncio.CancelledError:
            if relay.ended:
                # The client has the whole answer, end marker included; only the provider
                # had not hung up yet. A client leaving now (the OpenAI SDK closes at
                # [DONE]), or a shutdown, does not make it a failure.
                asyncio.current_task().uncancel()
                exchange.forced_outcome = None
                with contextlib.suppress(_ClientGone):
                    await relay.close()
            elif absorb_shutdown(exchange):
                exchange.error = SHUTDOWN_MESSAGE
                await relay.fail(api, exchange.model, SHUTDOWN_MESSAGE, "server_error")
            else:
                raise  # the client went away mid-answer
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
            return orjson.dumps(forwarded)
        return orjson.dumps(CODECS[target.wire].build_request(chat, resolution.model_id))

    def _headers(self, request: web.Request, target: Target) -> dict[str, str]:
        headers = {"Content-Type": _JSON, **target.headers}
        for name in _FORWARDED_REQUEST_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                headers[name] = value
        if target.passthrough_auth:
            for name in PASSTHROUGH_AUTH_HEADERS:
                value = request.headers.get(name)
                if value is not None:
                    headers[name] = value
        return headers

    def _reply_headers(self, exchange: Exchange) -> dict[str, str]:
        headers = {"x-request-id": exchange.request_id, "x-plano-model": exchange.model or ""}
        if exchange.trace is not None:
            headers[TRACE_ID_HEADER] = exchange.trace.trace_id
        if exchange.routing is not None:
            # Route names are printable but may be non-ASCII: headers carry them %-encoded.
            headers["x-plano-route"] = quote(exchange.routing.route or "", safe=" _-.:/+")
        return headers


class _Relay:
    """Writes one stream to the client, keeping the exchange's record up to date."""

    def __init__(
        self,
        response: web.StreamResponse,
        exchange: Exchange,
        tap,
        renderer,
        drop_usage_chunk: bool,
        renamer: ModelRenamer,
        mask: Callable[[str], str],
    ):
        self.response = response
        self.exchange = exchange
        self.tap = tap
        self.renderer = renderer
        self.drop_usage_chunk = drop_usage_chunk
        self.renamer = renamer  # passed-through events name the model as x-plano-model does
        self.mask = mask
        self.finished = False
        self.ended = False  # the stream's own end marker ([DONE], message_stop) was relayed
        self.failed = False
        self.max_held: int | None = None  # set when the renderer keeps the whole answer
        self.held = 0

    async def events(self, events: list[SSEEvent]) -> None:
        await self.emit([(event, self.tap.feed(event)) for event in events])

    async def emit(self, parsed: list[tuple[SSEEvent, list[StreamEvent]]]) -> None:
        """Write events already parsed by the tap: as they came, or rendered anew."""
        out = bytearray()
        for event, canonical in parsed:
            if event.data == "[DONE]":
                self.finished = True  # OpenAI's end of stream, finish_reason or not
            if event.data == "[DONE]" or event.event == "message_stop":
                self.ended = True
            self._record(canonical)
            if self.renderer is None:
                if not (self.drop_usage_chunk and _is_usage_only(canonical)):
                    out += format_sse(self.renamer.text(event.data), event.event)
            else:
                for item in canonical:
                    out += self.renderer.render(item)
            if any(isinstance(item, StreamError) for item in canonical):
                self.failed = self.finished = True
                break
        if out:
            await self._write(bytes(out))

    async def close(self) -> None:
        if self.renderer is not None and not self.failed:
            await self._write(self.renderer.finish())
        await self._eof()

    async def fail(
        self, api: ClientAPI, model: str, message: str, kind: str = "upstream_error"
    ) -> None:
        renderer = self.renderer or api.stream_renderer(model, {})
        self.failed = True
        try:
            await self._write(renderer.render(StreamError(message, kind)))
            await self._eof()
        except _ClientGone:
            pass

    def _record(self, events: list[StreamEvent]) -> None:
        for item in events:
            if isinstance(item, TextDelta | ToolCallStart | ToolCallDelta):
                self.exchange.mark_first_token()
                if self.max_held is not None:
                    self._hold(item)
            elif isinstance(item, UsageReport):
                self.exchange.usage = item.usage
            elif isinstance(item, Finish):
                self.finished = True
            elif isinstance(item, StreamError):
                # Recorded as the stream's failure (outcome stream_error), never its key.
                self.exchange.error = self.mask(redact_text(item.message))

    def _hold(self, item: TextDelta | ToolCallStart | ToolCallDelta) -> None:
        if isinstance(item, TextDelta):
            self.held += len(item.text)
        elif isinstance(item, ToolCallDelta):
            self.held += len(item.arguments)
        if self.max_held is not None and self.held > self.max_held:
            raise _StreamTooLarge(self.max_held)

    async def _write(self, data: bytes) -> None:
        if self.exchange.capture:
            self.exchange.keep_response_chunk(data)
        try:
            await self.response.write(data)
        except (ConnectionError, aiohttp.ClientConnectionError) as exc:
            raise _ClientGone() from exc

    async def _eof(self) -> None:
        try:
            await self.response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionError) as exc:
            raise _ClientGone() from exc


async def _first_events(chunks: AsyncIterator[bytes], sse: SSEParser) -> list[SSEEvent] | str:
    """The upstream's first events, or why there were none (then the attempt can retry)."""
    try:
        async for chunk in chunks:
            events = sse.feed(chunk)
            if events:
                return events
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _describe(exc)
    return sse.flush() or "the stream ended before its first event"


def _answered(resolution: Resolution) -> str:
    """The name of the model that answers, for x-plano-model, the answer's `model`, logs and
    traces. A wildcard provider's model id is the client's: a key sent there stays masked."""
    if resolution.provider.is_wildcard:
        return mask_key_like(resolution.model)
    return resolution.model


def _is_usage_only(events: list[StreamEvent]) -> bool:
    return bool(events) and all(isinstance(e, UsageReport) for e in events)


async def _status_failure(upstream: aiohttp.ClientResponse, resolution: Resolution) -> Failure:
    raw = await upstream.content.read(_MAX_ERROR_BODY)
    message = _upstream_message(raw) or upstream.reason or "error"
    return Failure(
        upstream.status,
        f"HTTP {upstream.status}",
        f"{resolution.model}: HTTP {upstream.status}: {redact_text(message)}",
        upstream.status in RETRYABLE_STATUS,
        upstream.status in FAILOVER_STATUS,
        upstream.headers.get("Retry-After"),
    )


def _upstream_message(raw: bytes) -> str | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:300].decode("utf-8", errors="replace").strip() or None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None


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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response was cut off"
    return redact_text(str(exc) or type(exc).__name__)
