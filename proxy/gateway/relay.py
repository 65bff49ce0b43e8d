"""Streaming an answer to the client: what the model listener and agent listeners share.

A stream is committed (200 and headers sent) only once its first events have arrived, so
that whatever fails before can still be answered with a status. From then on a `Relay`
writes each event, passed through or rendered in the client's API, keeps the exchange's
record (first token, usage, errors), and `finish` ends the stream: with the source's own
end, or with an error event in the client's format when the source breaks, the answer
grows too large, or the gateway shuts down, so SDKs raise instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

from proxy.canonical import (
    Finish,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallStart,
    UsageReport,
)
from proxy.config.redact import redact_text
from proxy.filters.errors import FilterBlocked, FilterErrored
from proxy.filters.output import JSON, SSE
from proxy.gateway.client_api import ClientAPI
from proxy.gateway.exchange import Exchange
from proxy.gateway.inflight import SHUTDOWN_MESSAGE, absorb_shutdown
from proxy.upstream.errors import describe
from proxy.wire.model_name import ModelRenamer
from proxy.wire.sse import SSEEvent, SSEEventTooLarge, SSEParser, format_sse


class ClientGone(Exception):
    """The client disconnected while we were writing to it."""


class StreamTooLarge(ValueError):
    """A stream whose whole answer the gateway keeps (Responses API) grew past the limit."""

    def __init__(self, limit: int):
        super().__init__(f"more than {limit} bytes of answer")


class Relay:
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
        # Every byte of the answer was written: only the end of the HTTP body is left.
        self.answered = False
        self.failed = False
        self.max_held: int | None = None  # set when the renderer keeps the whole answer
        self.held = 0
        filters = exchange.filters
        # What the listener's output filters make of each write, and the built-ins'
        # rewriting of the answer's text (which needs a renderer: see answer_renderer).
        self.output = filters.output_run() if filters is not None else None
        self.transform = filters.transform() if filters is not None else None

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
                if not (self.drop_usage_chunk and is_usage_only(canonical)):
                    out += format_sse(self.renamer.text(event.data), event.event)
            elif self.transform is None:
                for item in canonical:
                    out += self.renderer.render(item)
            else:
                out += self._transformed(canonical)
            if any(isinstance(item, StreamError) for item in canonical):
                self.failed = self.finished = True
                break
        if out:
            await self._write(bytes(out))

    def _transformed(self, canonical: list[StreamEvent]) -> bytes:
        """Rendered with the answer's text rewritten; what a transform holds back goes out
        before the answer's finish."""
        out = bytearray()
        for item in canonical:
            if isinstance(item, TextDelta):
                text = self.transform.feed(item.text)
                if text:
                    out += self.renderer.render(TextDelta(text))
                continue
            if isinstance(item, Finish):
                out += self._flush_transform()
            out += self.renderer.render(item)
        return bytes(out)

    def _flush_transform(self) -> bytes:
        rest = self.transform.flush() if self.transform is not None else ""
        return self.renderer.render(TextDelta(rest)) if rest else b""

    async def close(self) -> None:
        if self.renderer is not None and not self.failed:
            await self._write(self._flush_transform() + self.renderer.finish())
        # A client may go before the body's end: the OpenAI SDK closes the connection as
        # soon as it reads [DONE]. Then only writing that end fails, and the client has
        # had its whole answer.
        self.answered = not self.failed
        await self._eof()

    async def fail(
        self,
        api: ClientAPI,
        model: str,
        message: str,
        kind: str = "upstream_error",
        fresh: bool = False,
    ) -> None:
        """End the stream with an error event. `fresh`: the renderer may have rendered the
        answer's end already (an output filter refused the chunk that held it), so a new
        one renders the error."""
        renderer = api.stream_renderer(model, {}) if fresh else None
        renderer = renderer or self.renderer or api.stream_renderer(model, {})
        self.failed = True
        try:
            # Plano's own error event: not a chunk of the answer for the filters to see.
            await self._send(renderer.render(StreamError(message, kind)))
            await self._eof()
        except ClientGone:
            pass

    def _record(self, events: list[StreamEvent]) -> None:
        for item in events:
            if isinstance(item, TextDelta | ToolCallStart | ToolCallDelta):
                self.exchange.mark_first_token()
                tally = self.exchange.output_tally
                if tally is not None and not isinstance(item, ToolCallStart):
                    tally.feed(item.text if isinstance(item, TextDelta) else item.arguments)
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
            raise StreamTooLarge(self.max_held)

    async def _write(self, data: bytes) -> None:
        if self.output is not None and data:
            data = await self.output.chunk(data, SSE)  # may raise FilterBlocked, FilterErrored
            if not data:
                return
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        if self.exchange.capture:
            self.exchange.keep_response_chunk(data)
        try:
            await self.response.write(data)
        except (ConnectionError, aiohttp.ClientConnectionError) as exc:
            raise ClientGone() from exc

    async def _eof(self) -> None:
        try:
            await self.response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionError) as exc:
            raise ClientGone() from exc


async def first_events(chunks: AsyncIterator[bytes], sse: SSEParser) -> list[SSEEvent] | str:
    """The upstream's first events, or why there were none (then the attempt can retry)."""
    try:
        async for chunk in chunks:
            events = sse.feed(chunk)
            if events:
                return events
    except (aiohttp.ClientError, TimeoutError) as exc:
        return describe(exc)
    return sse.flush() or "the stream ended before its first event"


def is_usage_only(events: list[StreamEvent]) -> bool:
    return bool(events) and all(isinstance(e, UsageReport) for e in events)


async def finish(
    relay: Relay,
    first: list[tuple[SSEEvent, list[StreamEvent]]],
    chunks: AsyncIterator[bytes],
    sse: SSEParser,
    api: ClientAPI,
    model: str,
    source: str,
    label: str | None = None,
) -> None:
    """Relay a committed stream to its end. `source` names who sends it in the client's
    error event ("upstream openai/gpt-4o", "agent 'weather'"); `label` in the record (the
    source by default)."""
    label = label or source
    exchange = relay.exchange
    try:
        await relay.emit(first)
        if not relay.failed:
            async for chunk in chunks:
                await relay.events(sse.feed(chunk))
                if relay.failed:
                    break  # an error event ended the client's stream: nothing follows it
            else:
                await relay.events(sse.flush())
        if not relay.finished:
            raise aiohttp.ClientPayloadError("the stream ended before the response did")
        await relay.close()
    except ClientGone:
        # After an error event the client is right to leave at once (the SDKs raise on
        # it): the stream failed, the client did not go away from it. After the whole
        # answer it has what it came for: only the body's end could not be written.
        if not relay.failed and not relay.answered:
            exchange.status, exchange.error = 499, "client disconnected"
    except (aiohttp.ClientError, TimeoutError) as exc:
        exchange.error = f"{label}: {describe(exc)}"
        await relay.fail(api, model, f"{source} failed mid-stream: {describe(exc)}")
    except (SSEEventTooLarge, StreamTooLarge) as exc:
        exchange.error = f"{label}: sent {exc}"
        await relay.fail(api, model, f"{source} sent {exc} (overrides.max_upstream_response_bytes)")
    except (FilterBlocked, FilterErrored) as exc:
        # An output filter stopped the answer: the client's stream ends with its word.
        exchange.error = exc.message
        await relay.fail(api, model, exc.message, _filter_error_kind(exc), fresh=True)
    except asyncio.CancelledError:
        if relay.ended or relay.failed:
            # The client has the whole answer, end marker included, or the error event
            # that ended it; only the source had not hung up yet. A client leaving now
            # (the OpenAI SDK closes at [DONE], every SDK at an error event), or a
            # shutdown, does not change how the stream ended.
            asyncio.current_task().uncancel()
            exchange.forced_outcome = None
            with contextlib.suppress(ClientGone):
                await relay.close()
        elif absorb_shutdown(exchange):
            exchange.error = SHUTDOWN_MESSAGE
            await relay.fail(api, model, SHUTDOWN_MESSAGE, "server_error")
        else:
            raise  # the client went away mid-answer


def _filter_error_kind(exc: FilterBlocked | FilterErrored) -> str:
    return "invalid_request_error" if isinstance(exc, FilterBlocked) else "api_error"


def answer_renderer(api: ClientAPI, exchange: Exchange, model: str, body: dict, same_wire: bool):
    """The stream's renderer: None passes the source's events through as they are, unless
    a built-in rewrites the answer's text (then it is rendered from the canonical model)."""
    filters = exchange.filters
    if same_wire and (filters is None or not filters.rewrites_answer):
        return None
    return api.stream_renderer(model, body)


async def filter_answer(exchange: Exchange, raw: bytes) -> bytes:
    """A whole JSON answer through the output filters; a block or a fail_closed error
    raises (a ClientError: the client gets it instead of the answer)."""
    filters = exchange.filters
    output = filters.output_run() if filters is not None else None
    if output is None:
        return raw
    return await output.chunk(raw, JSON)


async def commit(
    request: web.Request, exchange: Exchange, headers: dict[str, str]
) -> web.StreamResponse:
    """Send the 200 and the headers of a stream: from here on, errors are events in it."""
    response = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers},
    )
    await response.prepare(request)
    exchange.status = 200
    return response
