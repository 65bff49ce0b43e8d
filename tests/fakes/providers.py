"""Fake OpenAI and Anthropic upstreams speaking their real wire protocols.

Each factory (`openai_app`, `anthropic_app`) builds an aiohttp app around a `FakeProvider`
state object. A test reads `state.requests` to see what the proxy sent upstream, and
queues behaviours on `state.script` (one consumed per request) to inject faults::

    state = FakeProvider(expected_key="sk-test")
    state.push(status(429, retry_after=1), ok())
    with ServerThread(openai_app(state)) as upstream:
        ...
    assert state.requests[-1].headers["authorization"] == "Bearer sk-test"

Normal replies echo the last user message so a test can tell which request a reply
answers; tokens are whitespace-separated words so usage is predictable.

Faults: status codes, slow and hung replies, resets mid-stream, malformed bodies, and
what a gateway must bound: `giant_answer` (any size, made as it is sent), `endless_stream`,
`endless_line` (one SSE line that never ends) and `drip` (one byte at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

# --------------------------------------------------------------------------- script


class Kind(enum.Enum):
    OK = "ok"
    STATUS = "status"
    SLOW = "slow"
    HANG = "hang"
    RESET = "reset"
    MALFORMED = "malformed"
    TEXT = "text"
    TOOL_CALL = "tool_call"
    GIANT = "giant"
    ENDLESS = "endless"
    DRIP = "drip"
    ENDLESS_LINE = "endless_line"


@dataclass(frozen=True)
class Behaviour:
    """One planned reaction to one request; build with the functions below."""

    kind: Kind
    status: int = 200
    retry_after: float | str | None = None
    body: Any = None
    delay_s: float = 0.0
    between_chunks_s: float = 0.0
    after_chunks: int = 2
    sse: bool = False
    text: str = ""
    tool_name: str = ""
    arguments_json: str = "{}"
    size: int = 0
    content_length: bool = False
    opening: bool = False


def ok() -> Behaviour:
    """Behave normally (what an empty script does too)."""
    return Behaviour(Kind.OK)


def status(code: int, retry_after: float | str | None = None, body: Any = None) -> Behaviour:
    """Fail with `code`; `body` (dict → JSON, str/bytes → raw) replaces the provider's shape."""
    return Behaviour(Kind.STATUS, status=code, retry_after=retry_after, body=body)


def slow(first_byte_delay_s: float, between_chunks_s: float = 0.0) -> Behaviour:
    """Delay the response; when streaming, headers go out first and the first chunk waits."""
    return Behaviour(Kind.SLOW, delay_s=first_byte_delay_s, between_chunks_s=between_chunks_s)


def hang() -> Behaviour:
    """Never answer; the handler ends when the client disconnects or the server stops."""
    return Behaviour(Kind.HANG)


def reset_mid_stream(after_chunks: int = 2) -> Behaviour:
    """Send `after_chunks` SSE events (or half a JSON body) and then drop the connection."""
    return Behaviour(Kind.RESET, after_chunks=after_chunks)


def malformed_json(sse: bool = False) -> Behaviour:
    """200 with a truncated JSON body; `sse=True` sends it as a broken SSE event instead."""
    return Behaviour(Kind.MALFORMED, sse=sse)


def text_reply(text: str) -> Behaviour:
    """Answer with this assistant text instead of the echo."""
    return Behaviour(Kind.TEXT, text=text)


def tool_call(name: str, arguments_json: str | Mapping[str, Any] = "{}") -> Behaviour:
    """Answer with a call to tool `name`; a string is sent verbatim, so it may be bad JSON."""
    if not isinstance(arguments_json, str):
        arguments_json = orjson.dumps(dict(arguments_json)).decode()
    return Behaviour(Kind.TOOL_CALL, tool_name=name, arguments_json=arguments_json)


def giant_answer(size: int, content_length: bool = False) -> Behaviour:
    """A valid non-streaming answer whose text is `size` bytes, sent in 64 KiB chunks that
    are made as they go (the fake never holds it). `content_length=True` declares its size
    up front; otherwise it is chunked, as most providers send JSON."""
    return Behaviour(Kind.GIANT, size=size, content_length=content_length)


def endless_stream(between_chunks_s: float = 0.05) -> Behaviour:
    """A stream that starts normally and then sends a text delta every `between_chunks_s`,
    never ending, until the client (the gateway) goes away or the server stops."""
    return Behaviour(Kind.ENDLESS, between_chunks_s=between_chunks_s)


def drip(between_bytes_s: float) -> Behaviour:
    """The normal answer (JSON or stream), one byte every `between_bytes_s`."""
    return Behaviour(Kind.DRIP, between_chunks_s=between_bytes_s)


def endless_line(size: int = 0, opening: bool = False) -> Behaviour:
    """A stream with one `data:` line that never ends: `size` bytes of it and then the
    connection closes, or with 0, until the client goes away. It is the first event, or
    with `opening=True` it follows the stream's normal opening events (the role chunk,
    message_start...), so it comes after the gateway has committed the stream."""
    return Behaviour(Kind.ENDLESS_LINE, size=size, opening=opening)


# --------------------------------------------------------------------------- state


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased so assertions need not guess the casing
    body: Any  # parsed JSON; None when empty or not JSON
    raw: bytes


@dataclass
class FakeProvider:
    """Shared between a fake app (server thread) and the test (main thread).

    `expected_key=None` accepts any credentials, even none.
    `cached_tokens` is reported as cached prompt tokens on every reply.
    """

    expected_key: str | None = None
    cached_tokens: int = 0
    models: list[str] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    # How many hung requests ended because the client (the proxy) went away.
    disconnects: int = 0
    # deque: append/popleft are thread-safe across the test and server threads.
    script: deque[Behaviour] = field(default_factory=deque)

    def push(self, *behaviours: Behaviour) -> FakeProvider:
        self.script.extend(behaviours)
        return self

    def next_behaviour(self) -> Behaviour:
        try:
            return self.script.popleft()
        except IndexError:
            return ok()

    @property
    def last(self) -> RecordedRequest:
        if not self.requests:
            raise AssertionError("the fake provider has received no request")
        return self.requests[-1]

    def clear(self) -> None:
        self.requests.clear()
        self.script.clear()
        self.disconnects = 0


# --------------------------------------------------------------------------- helpers

_CLOSING = web.AppKey("closing", asyncio.Event)
_WORD_PIECES = re.compile(r"\s*\S+")


def _words(text: str) -> int:
    return len(text.split())


def _limit(text: str, max_tokens: Any) -> tuple[str, bool]:
    words = text.split()
    if isinstance(max_tokens, int) and 0 <= max_tokens < len(words):
        return " ".join(words[:max_tokens]), True
    return text, False


def _pieces(text: str) -> list[str]:
    # Leading whitespace stays attached, so concatenated deltas rebuild the text exactly.
    return _WORD_PIECES.findall(text)


def _fragments(text: str, parts: int = 3) -> list[str]:
    if len(text) < parts:
        return [text] if text else []
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _hex(n: int = 12) -> str:
    return secrets.token_hex(n)


def _json_response(
    status_code: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status_code,
        body=orjson.dumps(payload),
        content_type="application/json",
        headers=dict(headers or {}),
    )


async def _pause(request: web.Request, seconds: float) -> None:
    if seconds <= 0:
        return
    # Waiting on the closing event lets stop() end a slow reply at once.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(request.app[_CLOSING].wait(), seconds)


async def _hang(request: web.Request, state: FakeProvider) -> None:
    closing = request.app[_CLOSING]
    try:
        while not closing.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                state.disconnects += 1
                return
            await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        state.disconnects += 1
        raise


def _drop_connection(request: web.Request) -> None:
    # close() (FIN after flushing), not an RST: an RST can make the client's kernel discard
    # the chunks it already received. The chunked body never gets its terminating chunk, so
    # the client still sees an incomplete read rather than a clean end.
    transport = request.transport
    if transport is not None:
        transport.close()


def _text_of(content: Any) -> str:
    """Text of an OpenAI or Anthropic content value: a string or a list of parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and "text" in part
        ]
        return " ".join(texts)
    return ""


def _is_stream(body: Any) -> bool:
    return isinstance(body, dict) and body.get("stream") is True


@dataclass(frozen=True)
class _Reply:
    text: str | None = None
    tool_name: str | None = None
    arguments: str = "{}"
    truncated: bool = False

    @property
    def output_tokens(self) -> int:
        if self.tool_name is not None:
            return max(1, _words(self.arguments))
        return _words(self.text or "")


# --------------------------------------------------------------------------- dialects


class _Dialect:
    request_id_header = "x-request-id"

    def error_body(self, code: int, message: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def auth_problem(self, headers: Mapping[str, str], state: FakeProvider) -> web.Response | None:
        raise NotImplementedError

    def validate(self, body: Any) -> str | None:
        raise NotImplementedError

    def plan(self, body: dict[str, Any], behaviour: Behaviour) -> _Reply:
        raise NotImplementedError

    def message(self, body: dict[str, Any], reply: _Reply, state: FakeProvider) -> dict[str, Any]:
        raise NotImplementedError

    def events(self, body: dict[str, Any], reply: _Reply, state: FakeProvider) -> list[bytes]:
        raise NotImplementedError

    def broken_event(self) -> bytes:
        raise NotImplementedError

    # Index of the first text delta in `events` of a text reply: what comes before it opens
    # a stream, the delta itself repeats forever in an endless one.
    first_delta = 1

    def endless_parts(self, body: dict[str, Any], state: FakeProvider) -> tuple[bytes, bytes]:
        events = self.events(body, _Reply(text="more"), state)
        return b"".join(events[: self.first_delta]), events[self.first_delta]

    def models(self, state: FakeProvider) -> dict[str, Any]:
        raise NotImplementedError

    def error_response(
        self,
        code: int,
        message: str | None = None,
        retry_after: float | str | None = None,
        body: Any = None,
    ) -> web.Response:
        headers = {self.request_id_header: "req_" + _hex()}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if body is None:
            return _json_response(code, self.error_body(code, message), headers)
        if isinstance(body, (dict, list)):
            return _json_response(code, body, headers)
        raw = body.encode() if isinstance(body, str) else bytes(body)
        return web.Response(status=code, body=raw, headers=headers)


_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", "not_found", "The requested resource does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class _OpenAI(_Dialect):
    request_id_header = "x-request-id"

    def error_body(self, code: int, message: str | None = None) -> dict[str, Any]:
        kind, err_code, default = _OPENAI_ERRORS.get(
            code,
            ("server_error", None, "Server error.")
            if code >= 500
            else ("invalid_request_error", None, "Request failed."),
        )
        return {
            "error": {"message": message or default, "type": kind, "param": None, "code": err_code}
        }

    def auth_problem(self, headers: Mapping[str, str], state: FakeProvider) -> web.Response | None:
        if state.expected_key is None:
            return None
        auth = headers.get("Authorization", "")
        if not auth:
            return self.error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if auth != f"Bearer {state.expected_key}":
            return self.error_response(401)
        return None

    def validate(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "We could not parse the JSON body of your request."
        if not isinstance(body.get("model"), str):
            return "you must provide a model parameter"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "Missing required parameter: 'messages'."
        return None

    def plan(self, body: dict[str, Any], behaviour: Behaviour) -> _Reply:
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if behaviour.kind is Kind.TOOL_CALL:
            return _Reply(tool_name=behaviour.tool_name, arguments=behaviour.arguments_json)
        if behaviour.kind is Kind.TEXT:
            text, cut = _limit(behaviour.text, max_tokens)
            return _Reply(text=text, truncated=cut)
        messages = body["messages"]
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        user_text = next(
            (
                _text_of(m.get("content"))
                for m in reversed(messages)
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        if last.get("role") == "tool":
            text = "tool said: " + _text_of(last.get("content"))
        else:
            forced = self._forced_tool(body)
            if forced is not None:
                return _Reply(
                    tool_name=forced, arguments=orjson.dumps({"echo": user_text}).decode()
                )
            text = "echo: " + user_text
        text, cut = _limit(text, max_tokens)
        return _Reply(text=text, truncated=cut)

    @staticmethod
    def _forced_tool(body: dict[str, Any]) -> str | None:
        tools = body.get("tools")
        choice = body.get("tool_choice")
        if not isinstance(tools, list) or not tools:
            return None
        if choice == "required":
            return str(tools[0].get("function", {}).get("name", ""))
        if isinstance(choice, dict) and choice.get("type") == "function":
            return str(choice.get("function", {}).get("name", ""))
        return None

    def _usage(self, body: dict[str, Any], reply: _Reply, state: FakeProvider) -> dict[str, Any]:
        prompt = sum(
            _words(_text_of(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
        )
        completion = reply.output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": state.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish(reply: _Reply) -> str:
        if reply.tool_name is not None:
            return "tool_calls"
        return "length" if reply.truncated else "stop"

    def message(self, body: dict[str, Any], reply: _Reply, state: FakeProvider) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.tool_name is not None:
            msg["tool_calls"] = [
                {
                    "id": "call_" + _hex(),
                    "type": "function",
                    "function": {"name": reply.tool_name, "arguments": reply.arguments},
                }
            ]
        msg["annotations"] = []
        return {
            "id": "chatcmpl-" + _hex(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "message": msg, "logprobs": None, "finish_reason": self._finish(reply)}
            ],
            "usage": self._usage(body, reply, state),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def events(self, body: dict[str, Any], reply: _Reply, state: FakeProvider) -> list[bytes]:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        base = {
            "id": "chatcmpl-" + _hex(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                # OpenAI adds an explicit null usage to every chunk once usage is requested.
                out["usage"] = None
            return out

        chunks: list[dict[str, Any]] = []
        if reply.tool_name is not None:
            # As OpenAI does: the role travels with the tool call's header (id, name, "").
            chunks.append(
                chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_" + _hex(),
                                "type": "function",
                                "function": {"name": reply.tool_name, "arguments": ""},
                            }
                        ],
                        "refusal": None,
                    }
                )
            )
            chunks.extend(
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                for piece in _fragments(reply.arguments)
            )
        else:
            chunks.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            chunks.extend(chunk({"content": piece}) for piece in _pieces(reply.text or ""))
        chunks.append(chunk({}, self._finish(reply)))
        if include_usage:
            chunks.append({**base, "choices": [], "usage": self._usage(body, reply, state)})
        return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]

    def broken_event(self) -> bytes:
        return b'data: {"id": \n\n'

    def models(self, state: FakeProvider) -> dict[str, Any]:
        names = state.models or ["gpt-4o-mini", "gpt-4o"]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 1715367049, "owned_by": "system"}
                for n in names
            ],
        }


_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("overloaded_error", "Overloaded"),
    529: ("overloaded_error", "Overloaded"),
}


class _Anthropic(_Dialect):
    request_id_header = "request-id"
    first_delta = 3  # message_start, content_block_start, ping

    def error_body(self, code: int, message: str | None = None) -> dict[str, Any]:
        kind, default = _ANTHROPIC_ERRORS.get(
            code,
            ("api_error", "Internal server error")
            if code >= 500
            else ("invalid_request_error", "Request failed."),
        )
        return {
            "type": "error",
            "error": {"type": kind, "message": message or default},
            "request_id": "req_" + _hex(),
        }

    def auth_problem(self, headers: Mapping[str, str], state: FakeProvider) -> web.Response | None:
        if state.expected_key is not None:
            # x-api-key is the documented header, but anthropic SDK 2.x sends its api_key as
            # "Authorization: Bearer", so a faithful upstream accepts both.
            bearer = headers.get("Authorization", "")
            key = headers.get("x-api-key") or bearer.removeprefix("Bearer ") or None
            if not key:
                return self.error_response(401, "x-api-key header is required")
            if key != state.expected_key:
                return self.error_response(401)
        if not headers.get("anthropic-version"):
            return self.error_response(400, "anthropic-version: header is required")
        return None

    def validate(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Request body is not valid JSON."
        if not isinstance(body.get("model"), str):
            return "model: Field required"
        if not isinstance(body.get("max_tokens"), int):
            return "max_tokens: Field required"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: Field required"
        return None

    def plan(self, body: dict[str, Any], behaviour: Behaviour) -> _Reply:
        max_tokens = body.get("max_tokens")
        if behaviour.kind is Kind.TOOL_CALL:
            return _Reply(tool_name=behaviour.tool_name, arguments=behaviour.arguments_json)
        if behaviour.kind is Kind.TEXT:
            text, cut = _limit(behaviour.text, max_tokens)
            return _Reply(text=text, truncated=cut)
        messages = body["messages"]
        last = messages[-1] if isinstance(messages[-1], dict) else {}
        results = self._tool_results(last)
        if last.get("role") == "user" and results:
            text = "tool said: " + " ".join(results)
        else:
            user_text = next(
                (
                    _text_of(m.get("content"))
                    for m in reversed(messages)
                    if isinstance(m, dict) and m.get("role") == "user"
                ),
                "",
            )
            forced = self._forced_tool(body)
            if forced is not None:
                return _Reply(
                    tool_name=forced, arguments=orjson.dumps({"echo": user_text}).decode()
                )
            text = "echo: " + user_text
        text, cut = _limit(text, max_tokens)
        return _Reply(text=text, truncated=cut)

    @staticmethod
    def _tool_results(message: dict[str, Any]) -> list[str]:
        content = message.get("content")
        if not isinstance(content, list):
            return []
        return [
            _text_of(block.get("content"))
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]

    @staticmethod
    def _forced_tool(body: dict[str, Any]) -> str | None:
        tools = body.get("tools")
        choice = body.get("tool_choice")
        if not isinstance(tools, list) or not tools or not isinstance(choice, dict):
            return None
        if choice.get("type") == "any":
            return str(tools[0].get("name", ""))
        if choice.get("type") == "tool":
            return str(choice.get("name", ""))
        return None

    def _input_tokens(self, body: dict[str, Any], state: FakeProvider) -> int:
        prompt = _words(_text_of(body.get("system")))
        for m in body["messages"]:
            if isinstance(m, dict):
                prompt += _words(_text_of(m.get("content")))
                prompt += sum(_words(r) for r in self._tool_results(m))
        # Anthropic's input_tokens excludes cache reads (OpenAI's prompt_tokens includes them).
        return max(prompt - state.cached_tokens, 0)

    def _usage(self, body: dict[str, Any], state: FakeProvider, output: int) -> dict[str, Any]:
        return {
            "input_tokens": self._input_tokens(body, state),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": state.cached_tokens,
            "output_tokens": output,
        }

    @staticmethod
    def _stop_reason(reply: _Reply) -> str:
        if reply.tool_name is not None:
            return "tool_use"
        return "max_tokens" if reply.truncated else "end_turn"

    @staticmethod
    def _tool_input(arguments: str) -> Any:
        # Bad JSON is passed through as a string so a test can feed the proxy a broken input.
        try:
            return orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return arguments

    def message(self, body: dict[str, Any], reply: _Reply, state: FakeProvider) -> dict[str, Any]:
        if reply.tool_name is not None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": "toolu_" + _hex(),
                "name": reply.tool_name,
                "input": self._tool_input(reply.arguments),
            }
        else:
            block = {"type": "text", "text": reply.text or ""}
        return {
            "id": "msg_" + _hex(),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [block],
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": self._usage(body, state, reply.output_tokens),
        }

    def events(self, body: dict[str, Any], reply: _Reply, state: FakeProvider) -> list[bytes]:
        start = {
            "id": "msg_" + _hex(),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(body, state, 1),
        }
        if reply.tool_name is not None:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": "toolu_" + _hex(),
                "name": reply.tool_name,
                "input": {},
            }
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in ["", *_fragments(reply.arguments)]
            ]
        else:
            block = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(reply.text or "")]
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            ),
            ("ping", {"type": "ping"}),
            *(
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
                for d in deltas
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
                    "usage": {"output_tokens": reply.output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        return [
            b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            for name, data in events
        ]

    def broken_event(self) -> bytes:
        return b'event: message_start\ndata: {"type": \n\n'

    def models(self, state: FakeProvider) -> dict[str, Any]:
        names = state.models or ["claude-sonnet-4-5", "claude-haiku-4-5"]
        data = [
            {
                "type": "model",
                "id": n,
                "display_name": n,
                "created_at": "2025-01-01T00:00:00Z",
            }
            for n in names
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }

    def count_tokens(self, body: dict[str, Any], state: FakeProvider) -> dict[str, Any]:
        return {"input_tokens": self._input_tokens(body, state) + state.cached_tokens}


# --------------------------------------------------------------------------- serving

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _record(request: web.Request, state: FakeProvider) -> RecordedRequest:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    recorded = RecordedRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        raw=raw,
    )
    state.requests.append(recorded)
    return recorded


async def _prelude(
    request: web.Request, state: FakeProvider, dialect: _Dialect
) -> tuple[RecordedRequest, Behaviour, web.StreamResponse | None]:
    """Record, consume one script entry, and apply the faults that precede any reply."""
    recorded = await _record(request, state)
    # Consumed before the auth check so each request takes exactly one entry, always.
    behaviour = state.next_behaviour()
    denied = dialect.auth_problem(request.headers, state)
    if denied is not None:
        return recorded, behaviour, denied
    kind = behaviour.kind
    if kind is Kind.HANG:
        await _hang(request, state)
        return recorded, behaviour, dialect.error_response(503, "server stopping")
    if kind is Kind.SLOW and not _is_stream(recorded.body):
        await _pause(request, behaviour.delay_s)
    if kind is Kind.STATUS:
        return (
            recorded,
            behaviour,
            dialect.error_response(
                behaviour.status, retry_after=behaviour.retry_after, body=behaviour.body
            ),
        )
    if kind is Kind.MALFORMED:
        if behaviour.sse:
            resp = web.Response(
                body=dialect.broken_event(), content_type="text/event-stream", charset="utf-8"
            )
        else:
            resp = web.Response(body=b'{"id": ', content_type="application/json")
        return recorded, behaviour, resp
    return recorded, behaviour, None


async def _send_json(
    request: web.Request, dialect: _Dialect, payload: Any, behaviour: Behaviour
) -> web.StreamResponse:
    body = orjson.dumps(payload)
    headers = {dialect.request_id_header: "req_" + _hex()}
    if behaviour.kind is not Kind.RESET:
        return web.Response(body=body, content_type="application/json", headers=headers)
    # Promise the whole body, deliver half: the client sees an incomplete read.
    resp = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
    resp.content_length = len(body)
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    _drop_connection(request)
    return resp


async def _open_stream(request: web.Request, dialect: _Dialect) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            dialect.request_id_header: "req_" + _hex(),
        }
    )
    await resp.prepare(request)
    return resp


async def _send_stream(
    request: web.Request, dialect: _Dialect, events: list[bytes], behaviour: Behaviour
) -> web.StreamResponse:
    resp = await _open_stream(request, dialect)
    gap = 0.0
    if behaviour.kind is Kind.SLOW:
        await _pause(request, behaviour.delay_s)
        gap = behaviour.between_chunks_s
    for index, event in enumerate(events):
        if behaviour.kind is Kind.RESET and index >= behaviour.after_chunks:
            break
        if index:
            await _pause(request, gap)
        await resp.write(event)
    if behaviour.kind is Kind.RESET:
        # Returning after this is fine: aiohttp's write_eof on the closed transport raises
        # ConnectionError, which it treats as a client disconnect, not a handler error.
        _drop_connection(request)
        return resp
    await resp.write_eof()
    return resp


_FILLER = b"a" * (64 * 1024)
_MARK = "\u0000giant\u0000"


@contextlib.contextmanager
def _counting_disconnects(state: FakeProvider) -> Iterator[None]:
    """A client that goes away shows as a failed write or, with handler cancellation, as a
    cancelled handler: either way it is counted, and a failed write ends the reply."""
    try:
        yield
    except ConnectionError:
        state.disconnects += 1
    except asyncio.CancelledError:
        state.disconnects += 1
        raise


async def _send_giant(
    request: web.Request,
    dialect: _Dialect,
    body: dict[str, Any],
    state: FakeProvider,
    behaviour: Behaviour,
) -> web.StreamResponse:
    """The dialect's own answer, its text `behaviour.size` bytes of filler, made as sent."""
    whole = orjson.dumps(dialect.message(body, _Reply(text=_MARK), state))
    head, tail = whole.split(orjson.dumps(_MARK)[1:-1])
    resp = web.StreamResponse(
        headers={"Content-Type": "application/json", dialect.request_id_header: "req_" + _hex()}
    )
    if behaviour.content_length:
        resp.content_length = len(head) + behaviour.size + len(tail)
    await resp.prepare(request)
    with _counting_disconnects(state):
        await resp.write(head)
        left = behaviour.size
        while left > 0:
            piece = _FILLER if left >= len(_FILLER) else _FILLER[:left]
            await resp.write(piece)
            left -= len(piece)
        await resp.write(tail)
        await resp.write_eof()
    return resp


async def _send_endless(
    request: web.Request,
    dialect: _Dialect,
    body: dict[str, Any],
    state: FakeProvider,
    behaviour: Behaviour,
) -> web.StreamResponse:
    """A stream that never ends; the handler returns when the client or the server goes."""
    resp = await _open_stream(request, dialect)
    closing = request.app[_CLOSING]
    opening, delta = dialect.endless_parts(body, state)
    with _counting_disconnects(state):
        if behaviour.kind is Kind.ENDLESS_LINE:
            await resp.write((opening if behaviour.opening else b"") + b"data: ")
            left = behaviour.size or -1
            while left and not closing.is_set():
                piece = _FILLER if left < 0 or left >= len(_FILLER) else _FILLER[:left]
                await resp.write(piece)
                left = -1 if left < 0 else left - len(piece)
        else:
            await resp.write(opening)
            while not closing.is_set():
                await resp.write(delta)
                await _pause(request, behaviour.between_chunks_s)
        # A sized line was sent, or the server is stopping: the stream never got its end.
        _drop_connection(request)
    return resp


async def _send_drip(
    request: web.Request,
    dialect: _Dialect,
    payload: bytes,
    state: FakeProvider,
    stream: bool,
    behaviour: Behaviour,
) -> web.StreamResponse:
    """`payload`, one byte at a time."""
    if stream:
        resp = await _open_stream(request, dialect)
    else:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(payload)
        await resp.prepare(request)
    with _counting_disconnects(state):
        for index in range(len(payload)):
            await resp.write(payload[index : index + 1])
            await _pause(request, behaviour.between_chunks_s)
        await resp.write_eof()
    return resp


def _completion_handler(state: FakeProvider, dialect: _Dialect) -> _Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        recorded, behaviour, early = await _prelude(request, state, dialect)
        if early is not None:
            return early
        body = recorded.body
        problem = dialect.validate(body)
        if problem is not None:
            return dialect.error_response(400, problem)
        if behaviour.kind is Kind.GIANT:
            return await _send_giant(request, dialect, body, state, behaviour)
        if behaviour.kind in (Kind.ENDLESS, Kind.ENDLESS_LINE):
            return await _send_endless(request, dialect, body, state, behaviour)
        reply = dialect.plan(body, behaviour)
        if behaviour.kind is Kind.DRIP:
            stream = _is_stream(body)
            payload = (
                b"".join(dialect.events(body, reply, state))
                if stream
                else orjson.dumps(dialect.message(body, reply, state))
            )
            return await _send_drip(request, dialect, payload, state, stream, behaviour)
        if _is_stream(body):
            return await _send_stream(
                request, dialect, dialect.events(body, reply, state), behaviour
            )
        return await _send_json(request, dialect, dialect.message(body, reply, state), behaviour)

    return handle


def _simple_handler(
    state: FakeProvider, dialect: _Dialect, answer: Callable[[RecordedRequest], Any]
) -> _Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        recorded, behaviour, early = await _prelude(request, state, dialect)
        if early is not None:
            return early
        return await _send_json(request, dialect, answer(recorded), behaviour)

    return handle


def _not_found_handler(state: FakeProvider, dialect: _Dialect) -> _Handler:
    # Recorded too, so a proxy calling the wrong path shows up in state.requests.
    async def handle(request: web.Request) -> web.StreamResponse:
        await _record(request, state)
        return dialect.error_response(404, f"Unknown request URL: {request.method} {request.path}")

    return handle


def _base_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)  # as large as real providers take
    closing = asyncio.Event()  # binds to the server loop on first use, not here
    app[_CLOSING] = closing

    async def on_shutdown(_app: web.Application) -> None:
        # Runs before aiohttp waits for in-flight handlers: releases hang() and slow().
        closing.set()

    app.on_shutdown.append(on_shutdown)
    return app


def openai_app(state: FakeProvider) -> web.Application:
    """OpenAI: POST /v1/chat/completions, GET /v1/models."""
    dialect = _OpenAI()
    app = _base_app()
    app.router.add_post("/v1/chat/completions", _completion_handler(state, dialect))
    # Azure OpenAI serves the same body under a deployment path, keyed by api-version.
    app.router.add_post(
        "/openai/deployments/{deployment}/chat/completions", _completion_handler(state, dialect)
    )
    app.router.add_get(
        "/v1/models", _simple_handler(state, dialect, lambda _r: dialect.models(state))
    )
    app.router.add_route("*", "/{tail:.*}", _not_found_handler(state, dialect))
    return app


def anthropic_app(state: FakeProvider) -> web.Application:
    """Anthropic: POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models."""
    dialect = _Anthropic()
    app = _base_app()

    def count(recorded: RecordedRequest) -> Any:
        body = recorded.body if isinstance(recorded.body, dict) else {}
        return dialect.count_tokens({"messages": [], **body}, state)

    app.router.add_post("/v1/messages", _completion_handler(state, dialect))
    app.router.add_post("/v1/messages/count_tokens", _simple_handler(state, dialect, count))
    app.router.add_get(
        "/v1/models", _simple_handler(state, dialect, lambda _r: dialect.models(state))
    )
    app.router.add_route("*", "/{tail:.*}", _not_found_handler(state, dialect))
    return app
