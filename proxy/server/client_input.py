"""What the model listener accepts from a client before any model is involved.

Every limit here answers a 4xx in the client's own error shape (the handler renders the
`ClientError`); none of them may reach a provider or the log as a traceback:

- the body: at most `MAX_BODY_BYTES` after decompression, one JSON object, nested at most
  `MAX_JSON_DEPTH` deep;
- `Content-Encoding`: none, `identity`, `gzip` or `deflate`;
- the headers Plano reads or forwards: valid UTF-8 text.

The HTTP framing limits (header sizes and counts) are aiohttp's parser's; their errors are
rendered by `proxy.server.protocol`.
"""

from __future__ import annotations

import asyncio
import re
from array import array
from itertools import accumulate

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from proxy.gateway.pipeline import ClientError
from proxy.gateway.resolve import PROVIDER_HINT_HEADER
from proxy.routing.affinity import AFFINITY_HEADER
from proxy.upstream.targets import PASSTHROUGH_AUTH_HEADERS

MAX_BODY_BYTES = 32 * 1024 * 1024  # room for a few base64 images
# Forwarding re-serializes the body with orjson, which refuses anything nested deeper than
# 254 levels; translating to another provider's format wraps parts of it a level or two
# deeper still (an Anthropic tool's input_schema becomes OpenAI's function.parameters).
# 128 keeps half of orjson's limit as headroom, and is far deeper than real requests
# (tool JSON schemas rarely pass 20 levels).
MAX_JSON_DEPTH = 128
# A client that sends its body slower than this holds a handler and a buffer for nothing
# (a slow-loris): the whole body must arrive within it.
BODY_READ_TIMEOUT_S = 60.0

SUPPORTED_ENCODINGS = ("gzip", "deflate")
UNSUPPORTED_ENCODING = (
    "Content-Encoding is not supported: send the body uncompressed, or with one of "
    + ", ".join(SUPPORTED_ENCODINGS)
)

# The request headers Plano reads or forwards upstream: each must be text.
READ_HEADERS = (
    "x-request-id",
    AFFINITY_HEADER.lower(),
    PROVIDER_HINT_HEADER,
    "traceparent",
    "tracestate",
    "anthropic-beta",
    *PASSTHROUGH_AUTH_HEADERS,
)

# A JSON string, escapes included; linear on valid JSON (the unrolled-loop form has a
# single way to match any input, so nothing backtracks).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Openers become +1 and closers -1 once the bytes are read as signed chars.
_BRACKET_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


def header_text(request: web.Request, name: str) -> str | None:
    """A header's value when it is valid UTF-8, else None (see `check_headers`).

    aiohttp decodes header bytes as UTF-8 with surrogateescape: a byte that is not UTF-8
    becomes a lone surrogate, which orjson, SQLite and the HTTP writer refuse later on.
    """
    value = request.headers.get(name)
    return value if value is None or _is_text(value) else None


def check_headers(request: web.Request) -> None:
    """400 for a header Plano reads or forwards that is not UTF-8 (the value is not shown:
    it may be a credential)."""
    headers = request.headers
    for name in READ_HEADERS:
        for value in headers.getall(name, ()):
            if not _is_text(value):
                raise ClientError(400, f"header {name} is not valid UTF-8")


def _is_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def read_json(request: web.Request) -> tuple[dict, bytes]:
    """The request body as a JSON object, and its bytes, within the listener's limits."""
    coding = _content_coding(request)
    raw = await _read_body(request, coding)
    if not raw.strip():
        raise ClientError(400, "request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ClientError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ClientError(400, "request body must be a JSON object")
    if nested_deeper_than(raw, MAX_JSON_DEPTH):
        raise ClientError(
            400, f"request body is nested too deeply: at most {MAX_JSON_DEPTH} levels"
        )
    return body, raw


async def _read_body(request: web.Request, coding: str | None) -> bytes:
    """The (decompressed) body, holding no more than the limit plus one read.

    Not `request.read()`: it raises the stream's buffer to the whole limit, so aiohttp
    decompresses a gzip bomb 32 MiB at a time and holds about six times the limit before
    it finds the body too large. Read as it comes, each step inflates only what one
    socket read's worth of buffer takes.
    """
    too_large = ClientError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    declared = request.content_length
    if coding is None and declared is not None and declared > MAX_BODY_BYTES:
        raise too_large  # said so up front: nothing to read
    body = bytearray()
    stream = request.content
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            while chunk := await stream.readany():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise too_large
    except TimeoutError:
        raise ClientError(
            408, f"request body did not arrive within {BODY_READ_TIMEOUT_S:g} s"
        ) from None
    except RequestPayloadError:
        if coding:
            raise ClientError(
                400, f"request body could not be decoded as Content-Encoding: {coding}"
            ) from None
        raise ClientError(400, "request body was cut off or malformed") from None
    return bytes(body)


def _content_coding(request: web.Request) -> str | None:
    """The one content coding aiohttp decodes for this body, or 415 for any other."""
    codings = [
        coding.strip().lower()
        for value in request.headers.getall("Content-Encoding", ())
        for coding in value.split(",")
    ]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in SUPPORTED_ENCODINGS:
        raise ClientError(415, UNSUPPORTED_ENCODING)
    return codings[0]


def nested_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether valid JSON `raw` nests arrays and objects more than `limit` deep.

    Linear and in C throughout: strings (whose brackets do not count) are cut out, the
    brackets left are read as +1/-1 steps, and the deepest running sum is the depth. A
    walk over the parsed value costs a Python step per value, several times orjson's own
    parse on a body of 10 million empty arrays.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case, without a copy
        return False
    steps = _JSON_STRING.sub(b"", raw).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", steps)), default=0) > limit
