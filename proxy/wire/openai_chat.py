"""OpenAI Chat Completions: the client API at /v1/chat/completions, and the upstream wire
of OpenAI and every OpenAI-compatible provider (Groq, Mistral, DeepSeek, Ollama, vLLM,
llama.cpp...)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from proxy.canonical import (
    ChatRequest,
    ChatResponse,
    Finish,
    ImagePart,
    Message,
    Part,
    StopReason,
    StreamError,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    Usage,
    UsageReport,
    WireError,
)
from proxy.wire.fields import is_int as _is_int
from proxy.wire.fields import new_id as _new_id
from proxy.wire.fields import number_field as _number
from proxy.wire.fields import one_of as _one_of
from proxy.wire.fields import optional_field as _optional
from proxy.wire.fields import shown as _shown
from proxy.wire.sse import SSEEvent

_FINISH_TO_STOP = {
    "stop": StopReason.END,
    "length": StopReason.LENGTH,
    "tool_calls": StopReason.TOOL_CALLS,
    "function_call": StopReason.TOOL_CALLS,
    "content_filter": StopReason.CONTENT_FILTER,
}
_STOP_TO_FINISH = {
    StopReason.END: "stop",
    StopReason.LENGTH: "length",
    StopReason.TOOL_CALLS: "tool_calls",
    StopReason.STOP_SEQUENCE: "stop",
    StopReason.CONTENT_FILTER: "content_filter",
    StopReason.ERROR: "stop",
}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


# --- client direction -----------------------------------------------------------------


def parse_request(body: dict) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("'model' is required and must be a string", "model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise WireError("'messages' must be a non-empty array", "messages")
    # Both are checked: a null max_completion_tokens must not wave a bad max_tokens through.
    legacy_max_tokens = _positive_int(body, "max_tokens")
    max_tokens = _positive_int(body, "max_completion_tokens") or legacy_max_tokens
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    elif stop is not None and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise WireError("'stop' must be a string or an array of strings", "stop")
    _optional(body, "stream_options", dict)
    return ChatRequest(
        model=model,
        messages=[_parse_message(m, i) for i, m in enumerate(raw_messages)],
        tools=_parse_tools(body.get("tools")),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=_optional(body, "parallel_tool_calls", bool),
        max_tokens=max_tokens,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stop=stop or [],
        stream=_optional(body, "stream", bool) is True,
        user=_optional(body, "user", str),
        metadata=_optional(body, "metadata", dict),
    )


def _positive_int(body: dict, key: str) -> int | None:
    value = body.get(key)
    if value is not None and (not _is_int(value) or value < 1):
        raise WireError(f"'{key}' must be a positive integer", key)
    return value


def wants_usage_in_stream(body: dict) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _parse_message(raw: object, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise WireError(f"{where} must be an object", where)
    role = raw.get("role")
    if not _one_of(role, _ROLES):
        raise WireError(
            f"{where}.role must be one of system, developer, user, assistant, tool; "
            f"got {_shown(role)}",
            f"{where}.role",
        )
    content = _parse_content(raw.get("content"), f"{where}.content")
    if role in ("system", "developer"):
        # The name is part of what the model reads (and counts: proxy/limits/tokens.py).
        return Message(role="system", content=content, name=_optional(raw, "name", str))
    if role in ("tool", "function"):
        call_id = raw.get("tool_call_id") or raw.get("name")
        if not isinstance(call_id, str):
            raise WireError(
                f"{where}.tool_call_id is required for tool messages", f"{where}.tool_call_id"
            )
        return Message(role="tool", content=content, tool_call_id=call_id)
    tool_calls = []
    if role == "assistant":
        for j, call in enumerate(raw.get("tool_calls") or []):
            tool_calls.append(_parse_tool_call(call, f"{where}.tool_calls[{j}]"))
    return Message(
        role=role, content=content, tool_calls=tool_calls, name=_optional(raw, "name", str)
    )


def _parse_content(content: object, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise WireError(f"{where} must be a string or an array of content parts", where)
    parts: list[Part] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(TextPart(part["text"]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise WireError(f"{where}[{i}].image_url.url must be a string", f"{where}[{i}]")
            detail = image.get("detail") if isinstance(image, dict) else None
            parts.append(ImagePart(url=url, detail=detail))
        elif kind in ("input_audio", "file", "refusal"):
            raise WireError(
                f"{where}[{i}]: content type '{kind}' is not supported by Plano yet",
                f"{where}[{i}]",
            )
        else:
            raise WireError(f"{where}[{i}] must be a text or image_url part", f"{where}[{i}]")
    return parts


def _parse_tool_call(call: object, where: str) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise WireError(f"{where}.function.name is required", where)
    arguments = function.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    return ToolCall(
        id=str(call.get("id") or _new_id("call_")), name=function["name"], arguments=arguments
    )


def _parse_tools(raw: object) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WireError("'tools' must be an array", "tools")
    tools = []
    for i, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise WireError(f"tools[{i}].function.name is required", f"tools[{i}]")
        parameters = function.get("parameters")
        tools.append(
            Tool(
                name=function["name"],
                description=_optional(function, "description", str),
                parameters=parameters
                if isinstance(parameters, dict)
                else {"type": "object", "properties": {}},
            )
        )
    return tools


def _parse_tool_choice(raw: object) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(mode=raw)
    if isinstance(raw, dict):
        function = raw.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return ToolChoice(mode="tool", name=function["name"])
    raise WireError(
        "'tool_choice' must be auto, none, required, or "
        '{"type": "function", "function": {"name": ...}}',
        "tool_choice",
    )


def render_response(resp: ChatResponse, model: str) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": resp.text or None}
    if resp.tool_calls:
        message["tool_calls"] = [_tool_call_json(call) for call in resp.tool_calls]
    out: dict[str, Any] = {
        "id": resp.id if resp.id.startswith("chatcmpl") else f"chatcmpl-{resp.id}",
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _STOP_TO_FINISH[resp.stop_reason],
            }
        ],
    }
    if resp.usage is not None:
        out["usage"] = usage_json(resp.usage)
    return out


def usage_json(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _tool_call_json(call: ToolCall) -> dict:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


class StreamRenderer:
    """Canonical events -> `chat.completion.chunk` SSE, as OpenAI streams them."""

    def __init__(self, model: str, include_usage: bool = False):
        self.model = model
        self.include_usage = include_usage
        self._id = _new_id("chatcmpl-")
        self._created = int(time.time())
        self._finished = False

    def render(self, event: StreamEvent) -> bytes:
        if isinstance(event, StreamStart):
            if event.id:
                self._id = event.id if event.id.startswith("chatcmpl") else f"chatcmpl-{event.id}"
            self._created = event.created or self._created
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ToolCallStart):
            return self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": event.index,
                            "id": event.id,
                            "type": "function",
                            "function": {"name": event.name, "arguments": ""},
                        }
                    ]
                }
            )
        if isinstance(event, ToolCallDelta):
            return self._chunk(
                {"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]}
            )
        if isinstance(event, Finish):
            self._finished = True
            return self._chunk({}, finish_reason=_STOP_TO_FINISH[event.stop_reason])
        if isinstance(event, UsageReport):
            if not self.include_usage:
                return b""
            return _data(
                {
                    "id": self._id,
                    "object": "chat.completion.chunk",
                    "created": self._created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_json(event.usage),
                }
            )
        if isinstance(event, StreamError):
            return (
                _data(
                    {
                        "error": {
                            "message": event.message,
                            "type": event.type,
                            "param": None,
                            "code": None,
                        }
                    }
                )
                + b"data: [DONE]\n\n"
            )
        return b""

    def finish(self) -> bytes:
        """The end of the stream: OpenAI's `[DONE]` sentinel."""
        return b"data: [DONE]\n\n"

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        return _data(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
        )


def render_error(
    status: int, message: str, error_type: str | None = None, param: str | None = None
) -> dict:
    kind = (
        error_type
        or _ERROR_TYPES.get(status)
        or ("invalid_request_error" if 400 <= status < 500 else "api_error")
    )
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


# --- upstream direction ---------------------------------------------------------------


def build_request(req: ChatRequest, model_id: str) -> dict:
    body: dict[str, Any] = {"model": model_id, "messages": [_message_json(m) for m in req.messages]}
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.parameters,
                },
            }
            for t in req.tools
        ]
    if req.tool_choice is not None:
        choice = req.tool_choice
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "tool"
            else choice.mode
        )
    if req.parallel_tool_calls is not None and req.tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    for key, value in (
        ("max_tokens", req.max_tokens),
        ("temperature", req.temperature),
        ("top_p", req.top_p),
        ("user", req.user),
    ):
        if value is not None:
            body[key] = value
    if req.stop:
        body["stop"] = req.stop
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _message_json(message: Message) -> dict:
    out: dict[str, Any] = {"role": message.role}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
        out["content"] = message.text
        return out
    if all(isinstance(p, TextPart) for p in message.content):
        # Plain strings are what every OpenAI-compatible server understands (llama.cpp
        # rejects part lists for assistant turns).
        out["content"] = message.text
    else:
        out["content"] = [
            {"type": "text", "text": p.text}
            if isinstance(p, TextPart)
            else {
                "type": "image_url",
                "image_url": {"url": p.url, **({"detail": p.detail} if p.detail else {})},
            }
            for p in message.content
        ]
    if message.tool_calls:
        out["tool_calls"] = [_tool_call_json(c) for c in message.tool_calls]
    if message.name:
        out["name"] = message.name
    return out


def parse_response(body: dict) -> ChatResponse:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("upstream response has no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    content = message.get("content")
    text = (
        content
        if isinstance(content, str)
        else "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    )
    calls = [
        ToolCall(
            id=str(c.get("id") or _new_id("call_")),
            name=c["function"]["name"],
            arguments=c["function"].get("arguments") or "{}",
        )
        for c in message.get("tool_calls") or []
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    ]
    return ChatResponse(
        id=str(body.get("id") or _new_id("chatcmpl-")),
        model=str(body.get("model") or ""),
        content=[TextPart(text)] if text else [],
        tool_calls=calls,
        stop_reason=_FINISH_TO_STOP.get(choice.get("finish_reason"), StopReason.END),
        usage=parse_usage(body.get("usage")),
        created=body.get("created") if _is_int(body.get("created")) else 0,
    )


def parse_usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=_int(raw.get("prompt_tokens")),
        output_tokens=_int(raw.get("completion_tokens")),
        cached_input_tokens=_int(prompt.get("cached_tokens") if isinstance(prompt, dict) else 0),
        reasoning_tokens=_int(
            completion.get("reasoning_tokens") if isinstance(completion, dict) else 0
        ),
    )


class StreamParser:
    """OpenAI-format SSE -> canonical events.

    Tolerates servers that repeat `id` and `function.name` in every tool-call delta
    (llama.cpp does): a call is started once per index, then only arguments flow.
    """

    def __init__(self) -> None:
        self._started = False
        self._calls: dict[int, str] = {}
        self._finished = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if event.data == "[DONE]":
            return []
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return [StreamError("upstream sent a malformed stream event", "upstream_error")]
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            return [
                StreamError(
                    str(error.get("message", "upstream error")),
                    str(error.get("type") or "upstream_error"),
                )
            ]
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(
                StreamStart(
                    id=str(chunk.get("id") or ""),
                    model=str(chunk.get("model") or ""),
                    created=_int(chunk.get("created")),
                )
            )
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                out.extend(self._choice(choice))
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            out.append(UsageReport(usage))
        return out

    def _choice(self, choice: dict) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str) and text:
            out.append(TextDelta(text))
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            index = _int(call.get("index"))
            function = call.get("function") or {}
            if index not in self._calls:
                self._calls[index] = str(call.get("id") or _new_id("call_"))
                out.append(ToolCallStart(index, self._calls[index], str(function.get("name", ""))))
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                out.append(ToolCallDelta(index, arguments))
        reason = choice.get("finish_reason")
        if reason and not self._finished:
            self._finished = True
            out.append(Finish(_FINISH_TO_STOP.get(reason, StopReason.END)))
        return out


# --- helpers --------------------------------------------------------------------------


def _data(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _int(value: object) -> int:
    return value if _is_int(value) else 0
