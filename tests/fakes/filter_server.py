"""A stand-in http filter speaking upstream Plano's filter protocol, with scripted replies.

POST {any path} with a body: the scripted behaviour answers (echo by default: a pass).
Every call is recorded (path, headers, body) with the time the filter itself took, so
tests can assert what filters saw and benchmarks can tell the filter's time from Plano's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

Behaviour = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass
class FilterCall:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class FilterServer:
    """Shared between the server thread and the test. `behaviour` answers every call."""

    name: str = "filter"
    calls: list[FilterCall] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # the filter's own time per call
    behaviour: Behaviour | None = None
    log: list[str] | None = None  # shared by several filters: the order they were called
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await request.read()
        with self.lock:
            self.calls.append(
                FilterCall(request.path, {k.lower(): v for k, v in request.headers.items()}, body)
            )
            if self.log is not None:
                self.log.append(self.name)
        behaviour = self.behaviour or echo()
        response = await behaviour(request, body)
        self.seconds.append(time.perf_counter() - started)
        return response

    def reset(self, behaviour: Behaviour | None = None) -> None:
        self.calls.clear()
        self.seconds.clear()
        self.behaviour = behaviour


def echo() -> Behaviour:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(body=body, content_type=request.content_type)

    return handle


def replace(old: bytes, new: bytes) -> Behaviour:
    """A mutation: the body with `old` replaced by `new`."""

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(body=body.replace(old, new), content_type=request.content_type)

    return handle


def block_if(word: bytes, status: int = 400, reply: bytes = b"") -> Behaviour:
    """Upstream's demo guard: a 4xx with its own body when the word is in the body."""

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        if word in body:
            return web.Response(body=reply, status=status, content_type="application/json")
        return web.Response(body=body, content_type=request.content_type)

    return handle


def status(code: int, reply: bytes = b"internal error") -> Behaviour:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(body=reply, status=code)

    return handle


def hang(seconds: float = 30.0) -> Behaviour:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(body=body)

    return handle


def raw(reply: bytes, content_type: str = "application/json") -> Behaviour:
    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(body=reply, content_type=content_type)

    return handle


def drip(between_s: float, pieces: int = 1000) -> Behaviour:
    """A 200 that sends a byte at a time, slower than any timeout would wait for."""

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        for _ in range(pieces):
            await response.write(b" ")
            await asyncio.sleep(between_s)
        return response

    return handle
