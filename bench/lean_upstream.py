"""A lean stand-in upstream: the canned answers of bench/proxy_overhead.py's upstream, served
from a raw asyncio.Protocol on uvloop instead of aiohttp's web server.

It shares CPU 0 with the load generator in bench/tracing_overhead.py, where the aiohttp
stand-in cost about as much CPU per request as the proxy under test. This one answers from
prebuilt bytes: the request head is split into lines, the body read by Content-Length (or
de-chunked), and the body parsed only to see whether a stream (and its usage chunk) was
asked for.

HTTP/1.1 as aiohttp's client (the proxy's upstream client) needs it: a status line,
Content-Type, Content-Length or Transfer-Encoding: chunked, keep-alive (Connection: close
and HTTP/1.0 close after the answer), `Expect: 100-continue`. No pipelining: requests on
one connection are answered in order, but a second one is not read until the first has
been answered (which, with nothing to wait for, is at once).

- POST /v1/chat/completions: `proxy_overhead.CHAT_COMPLETION` as application/json, or with
  `"stream": true` the same SSE events the aiohttp upstream sends (role + first token in the
  first write, one write per further token, then finish [+ usage] + [DONE]) as a chunked
  text/event-stream response, one chunk per write.
- POST /v1/messages: `proxy_overhead.ANTHROPIC_MESSAGE`.
- anything else: 404 / 405 / 400 with an empty body.

Run as a pinned child process like `proxy_overhead.upstream_main`: `main(conn, cpu)` sends
the bound port through `conn`, then serves until the parent says stop (or goes away).

    python bench/lean_upstream.py [PORT]    # standalone, for trying it out
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_overhead as po

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed"}


def _response(status: int, content_type: bytes | None, body: bytes, close: bool) -> bytes:
    head = [b"HTTP/1.1 %d %s" % (status, _REASONS[status])]
    if content_type:
        head.append(b"Content-Type: " + content_type)
    head.append(b"Content-Length: %d" % len(body))
    if close:
        head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _stream_writes(usage: bool, close: bool) -> tuple[bytes, ...]:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        + (b"Connection: close\r\n" if close else b"")
        + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    first = head + _frame(po.ROLE_CHUNK + po.CONTENT_CHUNKS[0])
    middle = tuple(_frame(chunk) for chunk in po.CONTENT_CHUNKS[1:])
    last = _frame(po.FINISH_CHUNK + (po.USAGE_CHUNK if usage else b"") + po.DONE) + b"0\r\n\r\n"
    return (first, *middle, last)


# Prebuilt answers, by "close the connection after it".
CHAT = {c: _response(200, b"application/json", po.CHAT_COMPLETION, c) for c in (False, True)}
MESSAGES = {c: _response(200, b"application/json", po.ANTHROPIC_MESSAGE, c) for c in (False, True)}
STREAM = {(u, c): _stream_writes(u, c) for u in (False, True) for c in (False, True)}
BAD_REQUEST = _response(400, None, b"", True)
NOT_FOUND = {c: _response(404, None, b"", c) for c in (False, True)}
NOT_ALLOWED = {c: _response(405, None, b"", c) for c in (False, True)}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _dechunk(buf: bytearray) -> tuple[bytes, int] | None:
    """(body, bytes consumed) of a complete chunked body at the start of `buf`, or None if
    more is needed. Raises ValueError on a malformed one."""
    body, at = bytearray(), 0
    while True:
        end = buf.find(b"\r\n", at)
        if end < 0:
            return None
        size = int(bytes(buf[at:end]).split(b";", 1)[0].strip() or b"x", 16)
        at = end + 2
        if size == 0:
            # Trailers (none expected) up to an empty line.
            while True:
                end = buf.find(b"\r\n", at)
                if end < 0:
                    return None
                if end == at:
                    return bytes(body), end + 2
                at = end + 2
        if len(buf) < at + size + 2:
            return None
        body += buf[at : at + size]
        if buf[at + size : at + size + 2] != b"\r\n":
            raise ValueError("bad chunk")
        at += size + 2
        if len(body) > MAX_BODY:
            raise ValueError("body too large")


class HttpUpstream(asyncio.Protocol):
    __slots__ = ("buf", "chunked", "close", "length", "method", "path", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self.length: int | None = None  # body length once the head is read
        self.chunked = False
        self.method = b""
        self.path = b""
        self.close = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            while self.transport is not None and self._one():
                pass
        except ValueError:
            self._write(BAD_REQUEST)
            self._close()

    def _one(self) -> bool:
        """Answer one request if the buffer holds all of it; False when more is needed."""
        buf = self.buf
        if self.length is None and not self.chunked:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ValueError("head too large")
                return False
            self._head(bytes(buf[:end]))
            del buf[: end + 4]
        if self.chunked:
            done = _dechunk(buf)
            if done is None:
                return False
            body, used = done
        else:
            assert self.length is not None
            if len(buf) < self.length:
                return False
            used = self.length
            body = bytes(buf[:used])
        del buf[:used]
        close = self.close
        self._answer(body, close)
        self._reset()
        if close:
            self._close()
            return False
        return True

    def _head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise ValueError("bad request line")
        self.method, target, version = parts
        self.path = target.split(b"?", 1)[0]
        length = 0
        connection = b""
        expect = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("bad header")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
                if length < 0 or length > MAX_BODY:
                    raise ValueError("bad content-length")
            elif name == b"transfer-encoding":
                self.chunked = value.strip().lower().endswith(b"chunked")
            elif name == b"connection":
                connection = value.strip().lower()
            elif name == b"expect":
                expect = value.strip().lower() == b"100-continue"
        self.length = None if self.chunked else length
        if version == b"HTTP/1.1":
            self.close = connection == b"close"
        else:
            self.close = connection != b"keep-alive"
        if expect:
            self._write(CONTINUE)

    def _answer(self, body: bytes, close: bool) -> None:
        path = self.path
        if self.method != b"POST":
            known = path in (b"/v1/chat/completions", b"/v1/messages")
            self._write(NOT_ALLOWED[close] if known else NOT_FOUND[close])
        elif path == b"/v1/chat/completions":
            try:
                request = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise ValueError("bad json") from None
            if not isinstance(request, dict):
                raise ValueError("bad json")
            if request.get("stream"):
                usage = bool((request.get("stream_options") or {}).get("include_usage"))
                for write in STREAM[usage, close]:
                    self._write(write)
            else:
                self._write(CHAT[close])
        elif path == b"/v1/messages":
            self._write(MESSAGES[close])
        else:
            self._write(NOT_FOUND[close])

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


async def serve(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(HttpUpstream, host, port, backlog=1024)


def _run(main: object) -> None:
    try:
        import uvloop
    except ImportError:  # still correct, only slower
        asyncio.run(main)  # type: ignore[arg-type]
    else:
        uvloop.run(main)  # type: ignore[arg-type]


def main(conn: Connection, cpu: int | None) -> None:
    """Child-process entry: pinned to `cpu`, sends its port, serves until told to stop."""
    po._child_setup(cpu)
    _run(_child(conn))


async def _child(conn: Connection) -> None:
    server = await serve()
    conn.send(server.sockets[0].getsockname()[1])
    try:
        await po._until_parent_says_stop(conn)
    finally:
        server.close()


async def _standalone(port: int) -> None:
    server = await serve(port=port)
    print(f"lean upstream on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    _run(_standalone(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
