"""A provider's non-streaming answer, read within a bound.

Translating an answer needs all of it, so it is held, up to the configured limit
(`overrides.max_upstream_response_bytes`); past it the attempt fails. An answer passed
through unchanged is held only while it is small (PASSTHROUGH_HOLD), so that it can still
be checked whole and retried when broken; a larger one is relayed to the client as it
arrives, and its usage read from the last bytes, kept on the side.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson
from aiohttp import web

from proxy.canonical import Usage
from proxy.gateway.errors import ClientError
from proxy.gateway.exchange import Exchange
from proxy.gateway.inflight import SHUTDOWN_MESSAGE, absorb_shutdown

# Answers up to this size are checked whole before the client sees a byte of them.
PASSTHROUGH_HOLD = 1 << 20
# The usage object closes an OpenAI or Anthropic answer: the last bytes are enough.
_TAIL = 64 * 1024
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_MAX_USAGE = 4096  # a usage object is a few hundred bytes
_MAX_TRIES = 64


def too_large_message(model: str, limit: int) -> str:
    return (
        f"{model}: the answer is larger than {limit} bytes (overrides.max_upstream_response_bytes)"
    )


def declared_size(upstream: aiohttp.ClientResponse) -> int | None:
    """The size the provider declared, when it is the size that will be read (the body is
    not compressed: a compressed one is counted after decompression)."""
    if upstream.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
        return None
    return upstream.content_length


async def read_head(content: aiohttp.StreamReader, hold: int) -> tuple[bytearray, bool]:
    """The body up to `hold` bytes (a chunk more at most), and whether that is all of it."""
    data = bytearray()
    while len(data) <= hold:
        chunk = await content.readany()
        if not chunk:
            return data, True
        data += chunk
    return data, False


def usage_in_tail(tail: bytes, parse_usage: Callable[[object], Usage | None]) -> Usage | None:
    """The usage object nearest the end of an answer's last bytes, or None if none is
    there whole. Only the last `"usage": {` is tried, over at most 4 KiB: bounded work."""
    at = tail.rfind(b'"usage"')
    match = _USAGE.match(tail, at) if at >= 0 else None
    if match is None:
        return None
    start, end = match.end() - 1, match.end() - 1
    for _ in range(_MAX_TRIES):
        end = tail.find(b"}", end + 1, start + _MAX_USAGE)
        if end < 0:
            return None
        try:
            value = orjson.loads(tail[start : end + 1])
        except orjson.JSONDecodeError:
            continue  # a nested object closed: the usage object ends further on
        return parse_usage(value)
    return None


async def relay_answer(
    request: web.Request,
    response: web.StreamResponse,
    exchange: Exchange,
    upstream: aiohttp.ClientResponse,
    head: bytes,
    limit: int,
    model: str,
    parse_usage: Callable[[object], Usage | None],
) -> None:
    """Send `head` and then the rest of the upstream's answer as it arrives, holding only
    one chunk and the tail. Once the 200 is out, a failure can only cut the body short
    (the client's JSON parser or HTTP client then fails): it is recorded on the exchange."""
    await response.prepare(request)
    exchange.status = 200
    exchange.mark_first_token()
    size, tail = 0, b""
    output = exchange.filters.output_run() if exchange.filters is not None else None
    try:
        async for chunk in _body(head, upstream.content):
            size += len(chunk)
            if size > limit:
                _cut(request, exchange, too_large_message(model, limit) + "; cut off")
                return
            tail = (tail + chunk)[-_TAIL:]
            if output is not None:
                chunk = await output.chunk(chunk, "application/json", whole=False)
            if exchange.capture:
                exchange.keep_response_chunk(chunk)
            try:
                await response.write(chunk)
            except (ConnectionError, aiohttp.ClientConnectionError):
                exchange.status, exchange.error = 499, "client disconnected"
                return
        exchange.usage = usage_in_tail(tail, parse_usage)  # None: not known, not zero
        await response.write_eof()
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else "the response was cut off"
        _cut(request, exchange, f"{model}: {reason} after {size} bytes were relayed")
    except ClientError as exc:  # an output filter stopped the answer: it is cut short
        _cut(request, exchange, exc.message)
    except asyncio.CancelledError:
        if not absorb_shutdown(exchange):
            raise
        _cut(request, exchange, SHUTDOWN_MESSAGE)


async def _body(head: bytes, content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    yield head
    async for chunk in content.iter_any():
        yield chunk


def _cut(request: web.Request, exchange: Exchange, message: str) -> None:
    """End the client's body short of its end (no last chunk, or fewer bytes than its
    Content-Length), so that it is not taken for a whole answer."""
    exchange.error = message
    if request.transport is not None:
        request.transport.close()
