"""An MCP filter: a `tools/call` of the filter's tool over streamable HTTP, one session kept.

Upstream opens a session (initialize, initialized, then the call) for every request. Here
each filter keeps ONE session, shared by concurrent requests, and opens a new one by itself
when the server drops it.

Why a background task: the SDK's `streamable_http_client` and `ClientSession` hold anyio
task groups, whose cancel scopes must be entered and exited in one task. A session that
outlives a request therefore lives in an owner task (`_Generation`) that enters both
context managers, initializes, and waits until it is told to stop. Requests call
`ClientSession.call_tool` from their own tasks: the session's dispatcher is made for
concurrent requests, and a caller's timeout cancels only its own wait.

What the SDK does not give, `_GuardedTransport` (the httpx2 transport under the session)
does, per call, through a context variable that the SDK carries from the calling task to the
task that POSTs (its streams copy the sender's context):
- `traceparent` and `x-request-id` on the tool call's POST (the SDK has no per-call headers);
- the POST's HTTP status, whether the connection could not be made, whether the reply was
  too large: the SDK folds all of these into one JSON-RPC error code;
- a byte cap on every reply body (JSON or SSE), so a huge tool result is refused, not held;
- no network error escapes into the SDK's task group (where one would end the session
  for every concurrent caller): each becomes an error for its own request only.

The retry rule: a call retries once, on a fresh session, only when the tool cannot have run,
i.e. the server answered 404 to the call (it does not know the session id: restarted, or
the session expired) or the connection could not be made at all (nothing was sent). A
connection that broke after the request was sent is not retried: the tool may have run.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.config.redact import redact_url
from proxy.filters.verdict import Decision, FilterFailure, Verdict

log = logging.getLogger("plano.filters.mcp")

# The request headers passed on to the filter server with the tool call.
FORWARDED_HEADERS = ("traceparent", "x-request-id")
DEFAULT_MAX_REPLY_BYTES = 32 * 1024 * 1024  # as large as a client body may be
DEFAULT_INIT_TIMEOUT = 10.0  # seconds for initialize when no caller is waiting on it
_CONNECT_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 2.0  # how long close() lets the owner task say goodbye (DELETE the session)


@dataclass(slots=True)
class _CallState:
    """What the transport saw of one call's HTTP traffic (or of one initialize)."""

    headers: dict[str, str] = field(default_factory=dict)
    read_timeout: float | None = None  # bounds a POST the caller gave up on
    status: int | None = None  # the first response's HTTP status
    connect_failed: str | None = None  # why the connection could not be made
    broken: str | None = None  # a network error after the request went out
    too_large: bool = False
    server_gone: bool = False  # the session is unknown to the server: skip its DELETE


_CALL: contextvars.ContextVar[_CallState | None] = contextvars.ContextVar(
    "plano_mcp_call", default=None
)


class _NoTraceback(logging.Filter):
    """The SDK logs some per-request failures with `logger.exception`; each one already
    reaches the caller as an error, so keep the line and drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None
        return True


@functools.cache
def _sdk():
    """The SDK, imported on first use: it is heavy and only MCP filters need it."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    logging.getLogger("mcp.client.streamable_http").addFilter(_NoTraceback())
    return httpx2, ClientSession, streamable_http_client, MCPError


def _make_transport(httpx2: Any, max_bytes: int) -> Any:
    class _TooLarge(httpx2.StreamError):
        pass

    class _Broken(httpx2.StreamError):
        pass

    class _CappedStream(httpx2.AsyncByteStream):
        def __init__(self, inner: Any, state: _CallState | None):
            self._inner, self._state = inner, state

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            try:
                async for chunk in self._inner:
                    seen += len(chunk)
                    if seen > max_bytes:
                        if self._state is not None:
                            self._state.too_large = True
                        raise _TooLarge(f"reply larger than {max_bytes} bytes")
                    yield chunk
            except httpx2.TransportError as exc:
                # A StreamError is what the SDK expects from a body read; a TransportError
                # would end its task group, and so every caller's session.
                if self._state is not None:
                    self._state.broken = type(exc).__name__
                raise _Broken(type(exc).__name__) from None

        async def aclose(self) -> None:
            await self._inner.aclose()

    class _GuardedTransport(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self._inner = httpx2.AsyncHTTPTransport(trust_env=False)

        async def handle_async_request(self, request: Any) -> Any:
            state = _CALL.get()
            if request.method == "GET":
                # The standalone GET stream carries server-initiated messages; a filter
                # needs none, and it would hold a connection and a server stream open.
                return httpx2.Response(405, request=request)
            if request.method == "DELETE" and state is not None and state.server_gone:
                return httpx2.Response(204, request=request)
            if state is not None:
                request.headers.update(state.headers)
                if state.read_timeout is not None:
                    timeouts = dict(request.extensions.get("timeout", {}))
                    timeouts["read"] = state.read_timeout
                    request.extensions["timeout"] = timeouts
            try:
                response = await self._inner.handle_async_request(request)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                if request.method == "DELETE":
                    return httpx2.Response(204, request=request)  # nobody left to tell
                if state is not None:
                    state.connect_failed = str(exc) or type(exc).__name__
                return httpx2.Response(502, request=request)
            except httpx2.TransportError as exc:
                if state is not None:
                    state.broken = type(exc).__name__
                return httpx2.Response(502, request=request)
            if state is not None and state.status is None:
                state.status = response.status_code
            return httpx2.Response(
                response.status_code,
                headers=response.headers,
                stream=_CappedStream(response.stream, state),
                extensions=response.extensions,
                request=request,
            )

        async def aclose(self) -> None:
            await self._inner.aclose()

    return _GuardedTransport()


class _Generation:
    """One MCP session, owned by its own task from connect to goodbye."""

    def __init__(self) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stop = asyncio.Event()
        self.state = _CallState()  # the initialize's HTTP outcome
        self.session: Any = None
        self.task: asyncio.Task[None] | None = None

    @property
    def dead(self) -> bool:
        return self.stop.is_set() or self.task is None or self.task.done()

    def retire(self, server_gone: bool) -> None:
        self.state.server_gone = self.state.server_gone or server_gone
        self.stop.set()


class McpFilterTransport:
    """Calls one MCP tool as a filter. `call` gives a Verdict or raises FilterFailure."""

    def __init__(
        self,
        url: str,
        tool: str,
        *,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
    ):
        self.url, self.tool = url, tool
        self._where = f"MCP filter tool {tool!r} at {redact_url(url)}"
        self._max = max_reply_bytes
        self._init_timeout = init_timeout
        self._gen: _Generation | None = None
        self._http: Any = None
        self._closed = False

    # --- the call -------------------------------------------------------------------

    async def call(
        self, body: bytes, path: str, headers: Mapping[str, str], timeout: float
    ) -> Verdict:
        if self._closed:
            raise FilterFailure("connect error", f"{self._where}: the filter is closed")
        document, is_json = _parse_body(body)
        forwarded = {}
        for name in FORWARDED_HEADERS:
            value = headers.get(name)
            if value is not None:
                forwarded[name] = value
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                result = await self._call_tool(
                    {"body": document, "path": path}, forwarded, deadline
                )
        except TimeoutError:
            raise FilterFailure(
                "timeout", f"{self._where} gave no answer within {timeout:g}s"
            ) from None
        return self._verdict(result, document, is_json)

    async def _call_tool(self, arguments: dict, forwarded: dict[str, str], deadline: float) -> Any:
        _, _, _, MCPError = _sdk()
        for attempt in (1, 2):
            gen = await self._session()
            remaining = max(deadline - time.monotonic(), 0.001)
            state = _CallState(headers=forwarded, read_timeout=remaining + 1.0)
            token = _CALL.set(state)
            try:
                return await gen.session.call_tool(
                    self.tool, arguments, read_timeout_seconds=remaining
                )
            except MCPError as exc:
                failure, retry = self._failure(gen, state, exc)
            except Exception as exc:  # a result the SDK could not read: pydantic, claims
                failure = FilterFailure(
                    "malformed reply", f"{self._where} sent a reply MCP cannot read: {exc}"
                )
                retry = False
            finally:
                _CALL.reset(token)
            if not retry or attempt == 2:
                raise failure
            log.info(
                "%s: the session was lost before the call (%s); retrying on a new one",
                self._where,
                failure.outcome,
            )
        raise AssertionError("unreachable")

    def _failure(
        self, gen: _Generation, state: _CallState, exc: Exception
    ) -> tuple[FilterFailure, bool]:
        """The FilterFailure for a call's MCPError, and whether a retry is safe."""
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        code = getattr(exc, "code", None)
        if state.connect_failed is not None:
            gen.retire(server_gone=False)
            return FilterFailure(
                "connect error", f"{self._where}: cannot connect ({state.connect_failed})"
            ), True
        if state.status == 404:
            gen.retire(server_gone=True)
            return FilterFailure(
                "HTTP 404", f"{self._where} does not know the session (HTTP 404)", status=404
            ), True
        if state.too_large:
            return FilterFailure(
                "malformed reply", f"{self._where} sent a reply larger than {self._max} bytes"
            ), False
        if state.status is not None and state.status >= 400:
            return FilterFailure(
                f"HTTP {state.status}",
                f"{self._where} answered HTTP {state.status}: {exc}",
                status=state.status,
            ), False
        if state.broken is not None:
            return FilterFailure(
                "connect error",
                f"{self._where}: the connection broke before the reply ({state.broken})",
            ), False
        if code == REQUEST_TIMEOUT:
            return FilterFailure("timeout", f"{self._where} gave no answer in time"), False
        if code == CONNECTION_CLOSED:
            gen.retire(server_gone=False)
            return FilterFailure(
                "connect error", f"{self._where}: the session closed before the reply ({exc})"
            ), False
        return FilterFailure("protocol error", f"{self._where} answered an error: {exc}"), False

    def _verdict(self, result: Any, document: Any, is_json: bool) -> Verdict:
        content = getattr(result, "content", None) or []
        text = getattr(content[0], "text", None) if content else None
        if result.is_error:
            message = text if isinstance(text, str) else "blocked (no text in the tool's error)"
            return Verdict(Decision.BLOCK, status=400, message=message)
        structured = result.structured_content
        if isinstance(structured, dict) and "result" in structured:
            new = structured["result"]
        elif isinstance(text, str):
            new = text
        else:
            raise FilterFailure(
                "malformed reply",
                f"{self._where} returned neither structuredContent.result nor text content",
            )
        if not is_json:
            # A body that is not JSON (an output chunk: an SSE event) comes back as text.
            if not isinstance(new, str):
                raise self._malformed("a non-text result for a text body", new)
            return (
                Verdict(Decision.PASS)
                if new == document
                else Verdict(Decision.MODIFY, body=new.encode())
            )
        if isinstance(new, str):
            # Text content, or a tool typed `-> str` (its structuredContent.result is the
            # JSON text): the body as JSON text, as upstream reads content[0].text.
            try:
                new = orjson.loads(new)
            except orjson.JSONDecodeError:
                raise self._malformed("text that is not JSON", new) from None
        if type(new) is not type(document):
            raise self._malformed(
                f"a {type(new).__name__} for a JSON {type(document).__name__}", new
            )
        if new == document:
            return Verdict(Decision.PASS)
        try:
            return Verdict(Decision.MODIFY, body=orjson.dumps(new))
        except TypeError as exc:  # e.g. integers past 64 bits
            raise FilterFailure("malformed reply", f"{self._where}: {exc}") from None

    def _malformed(self, what: str, value: Any) -> FilterFailure:
        shown = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        return FilterFailure("malformed reply", f"{self._where} returned {what}: {shown[:80]!r}")

    # --- the session ----------------------------------------------------------------

    async def _session(self) -> _Generation:
        gen = self._gen
        if gen is None or gen.dead:
            gen = self._gen = self._start()
        # Shielded: the future is shared by every caller waiting on this initialize, and
        # one caller's timeout must not cancel it for the others.
        await asyncio.shield(gen.ready)
        return gen

    def _start(self) -> _Generation:
        httpx2, _, _, _ = _sdk()
        if self._http is None:
            self._http = httpx2.AsyncClient(
                transport=_make_transport(httpx2, self._max),
                timeout=httpx2.Timeout(self._init_timeout, connect=_CONNECT_TIMEOUT),
            )
        gen = _Generation()
        gen.task = asyncio.get_running_loop().create_task(
            self._own(gen), name=f"plano-mcp-session {self.tool}"
        )
        return gen

    async def _own(self, gen: _Generation) -> None:
        """Connect, initialize, serve until told to stop, then close: all in this task."""
        _, ClientSession, streamable_http_client, _ = _sdk()
        _CALL.set(gen.state)
        try:
            async with (
                streamable_http_client(
                    self.url, http_client=self._http, max_sse_event_size=self._max
                ) as (read, write),
                ClientSession(read, write, read_timeout_seconds=self._init_timeout) as session,
            ):
                await session.initialize()
                gen.session = session
                gen.ready.set_result(None)
                await gen.stop.wait()
        except Exception as exc:
            if not gen.ready.done():
                gen.ready.set_exception(self._init_failure(gen.state, exc))
            else:
                log.debug("%s: session ended: %r", self._where, exc)
        finally:
            gen.stop.set()
            if not gen.ready.done():  # cancelled before it was ready
                gen.ready.set_exception(
                    FilterFailure("connect error", f"{self._where}: the filter is closing")
                )
            # Nobody may be waiting: keep "exception was never retrieved" out of the log.
            if gen.ready.done() and not gen.ready.cancelled():
                gen.ready.exception()

    def _init_failure(self, state: _CallState, exc: Exception) -> FilterFailure:
        if state.connect_failed is not None:
            return FilterFailure(
                "connect error", f"{self._where}: cannot connect ({state.connect_failed})"
            )
        if state.too_large:
            return FilterFailure(
                "malformed reply", f"{self._where} sent an initialize reply over {self._max} bytes"
            )
        if state.status is not None and state.status >= 400:
            return FilterFailure(
                f"HTTP {state.status}",
                f"{self._where} answered HTTP {state.status} to initialize",
                status=state.status,
            )
        if state.broken is not None:
            return FilterFailure(
                "connect error", f"{self._where}: the connection broke ({state.broken})"
            )
        return FilterFailure(
            "protocol error", f"{self._where}: initialize failed: {_describe(exc)}"
        )

    async def close(self) -> None:
        """End the session (DELETE, when the server still has it) and the connections."""
        self._closed = True
        gen, self._gen = self._gen, None
        if gen is not None and gen.task is not None:
            gen.stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(gen.task), _CLOSE_TIMEOUT)
            except TimeoutError:
                gen.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gen.task
        if self._http is not None:
            http, self._http = self._http, None
            await http.aclose()


def _parse_body(body: bytes) -> tuple[Any, bool]:
    """The body as the tool gets it: the JSON document, or the text when it is not JSON
    (an output chunk may be an SSE event)."""
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace"), False


def _describe(exc: BaseException) -> str:
    """An exception group's first leaf, readable."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
