"""Anthropic Messages API (POST /v1/messages) <-> proxy.canonical, in both directions.

Client direction: `parse_request`, `render_response`, `StreamRenderer`, `render_error`.
Upstream direction: `build_request`, `parse_response`, `StreamParser`.

Decisions the two models force:
- Input tokens: Anthropic's `input_tokens` excludes prompt-cache reads and writes, while
  canonical `input_tokens` is the whole prompt (like OpenAI's `prompt_tokens`). Parsing
  adds `cache_read_input_tokens` and `cache_creation_input_tokens`; rendering subtracts
  `cached_input_tokens` back out. Canonical has no cache-write count, so rendered
  `cache_creation_input_tokens` is always 0 and those tokens show as plain input.
- Tool arguments: canonical keeps them as JSON text, Anthropic's `input` must be an
  object. Empty text becomes `{}`; text that is not a JSON object (a model can emit
  broken JSON) becomes `{"_raw": text}`, and that exact shape is unwrapped when parsed,
  so the model's text survives a round trip instead of silently turning into `{}`.
- Stop reasons: a response carrying tool calls but a natural-end reason (Gemini does
  this) is rendered as `tool_use`, which Anthropic clients use to run their tool loop.
- Streams: Anthropic puts output usage in `message_delta`, canonical reports usage after
  Finish, so `StreamRenderer` holds `message_delta`/`message_stop` until `UsageReport`
  or `finish()`. Input tokens are unknown at `message_start` (0 there); the cumulative
  counts in `message_delta` carry them, which SDK accumulators honour.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import unquote_to_bytes

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
from proxy.wire.fields import one_of, shown
from proxy.wire.sse import SSEEvent, format_sse

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "StreamParser",
    "StreamRenderer",
    "build_request",
    "parse_request",
    "parse_response",
    "render_error",
    "render_response",
]

# Anthropic requires max_tokens; canonical requests from OpenAI clients often omit it.
DEFAULT_MAX_TOKENS = 4096

_RAW_KEY = "_raw"
_ERROR_PREFIX = "Error: "
# Clients echo their thinking back in history; no other wire format can carry it.
_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})

_STOP_TO_WIRE = {
    StopReason.END: "end_turn",
    StopReason.LENGTH: "max_tokens",
    StopReason.TOOL_CALLS: "tool_use",
    StopReason.STOP_SEQUENCE: "stop_sequence",
    StopReason.CONTENT_FILTER: "refusal",
    StopReason.ERROR: "end_turn",
}
_STOP_FROM_WIRE = {
    "end_turn": StopReason.END,
    "max_tokens": StopReason.LENGTH,
    "tool_use": StopReason.TOOL_CALLS,
    "stop_sequence": StopReason.STOP_SEQUENCE,
    "refusal": StopReason.CONTENT_FILTER,
    "pause_turn": StopReason.END,
    "model_context_window_exceeded": StopReason.LENGTH,
}
_CHOICE_FROM_WIRE = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}
_CHOICE_TO_WIRE = {mode: wire for wire, mode in _CHOICE_FROM_WIRE.items()}

# Anthropic documents invalid_request_error for "other 4XX status codes not listed".
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# --- strict field validation (client bodies) ---------------------------------------------


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _invalid(path: str, expected: str, value: object) -> WireError:
    return WireError(f"{path}: expected {expected}, got {_describe(value)}", path)


def _required(obj: dict, key: str, path: str) -> Any:
    if key not in obj:
        raise WireError(f"{path}: field required", path)
    return obj[key]


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _invalid(path, "a string", value)
    return value


def _object(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(path, "an object", value)
    return value


def _array(value: object, path: str) -> list:
    if not isinstance(value, list):
        raise _invalid(path, "an array", value)
    return value


def _optional_string(value: object, path: str) -> str | None:
    return None if value is None else _string(value, path)


def _optional_number(value: object, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(path, "a number", value)
    return value


def _optional_bool(value: object, path: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _invalid(path, "a boolean", value)
    return value


def _field_string(obj: dict, key: str, path: str) -> str:
    """obj[key], which must be present and a string."""
    return _string(_required(obj, key, f"{path}.{key}"), f"{path}.{key}")


def _child(obj: dict, key: str, path: str) -> tuple[Any, str]:
    return obj.get(key), f"{path}.{key}"


# --- client direction: parse_request --------------------------------------------------------


def parse_request(body: dict) -> ChatRequest:
    """The JSON body of a client's POST /v1/messages, as a canonical request."""
    if not isinstance(body, dict):
        raise WireError(f"request body: expected a JSON object, got {_describe(body)}")
    model = _string(_required(body, "model", "model"), "model")
    max_tokens = _max_tokens(_required(body, "max_tokens", "max_tokens"))
    messages = _system_messages(body.get("system"))
    raw_messages = _array(_required(body, "messages", "messages"), "messages")
    if not raw_messages:  # Anthropic's own wording
        raise WireError("messages: at least one message is required", "messages")
    for i, item in enumerate(raw_messages):
        messages.extend(_parse_message(item, f"messages.{i}"))
    tool_choice, parallel = _parse_tool_choice(body.get("tool_choice"))
    return ChatRequest(
        model=model,
        messages=messages,
        tools=_parse_tools(body.get("tools")),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=max_tokens,
        temperature=_optional_number(body.get("temperature"), "temperature"),
        top_p=_optional_number(body.get("top_p"), "top_p"),
        stop=_stop_sequences(body.get("stop_sequences")),
        stream=bool(_optional_bool(body.get("stream"), "stream")),
        user=_user(body.get("metadata")),
    )


def _max_tokens(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    shown = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    raise WireError(
        f"max_tokens: expected a positive integer, got {shown or _describe(value)}", "max_tokens"
    )


def _stop_sequences(value: object) -> list[str]:
    if value is None:
        return []
    items = _array(value, "stop_sequences")
    return [_string(item, f"stop_sequences.{i}") for i, item in enumerate(items)]


def _user(value: object) -> str | None:
    if value is None:
        return None
    user_id, path = _child(_object(value, "metadata"), "user_id", "metadata")
    return _optional_string(user_id, path)


def _system_messages(value: object) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Message(role="system", content=[TextPart(value)])] if value else []
    if not isinstance(value, list):
        raise _invalid("system", "a string or an array of text blocks", value)
    messages = []
    for i, block in enumerate(value):
        path = f"system.{i}"
        if _block_type(block, path) != "text":
            raise WireError(f"{path}.type: system blocks must be of type 'text'", f"{path}.type")
        messages.append(Message(role="system", content=[_text_part(block, path)]))
    return messages


def _parse_message(value: object, path: str) -> list[Message]:
    message = _object(value, path)
    role, role_path = _child(message, "role", path)
    if role not in ("user", "assistant"):
        shown = repr(role) if isinstance(role, str) else _describe(role)
        raise WireError(f"{role_path}: must be 'user' or 'assistant', got {shown}", role_path)
    content_path = f"{path}.content"
    content = _required(message, "content", content_path)
    if isinstance(content, str):
        return [Message(role=role, content=[TextPart(content)] if content else [])]
    if not isinstance(content, list):
        raise _invalid(content_path, "a string or an array of content blocks", content)
    if role == "assistant":
        return [_assistant_message(content, content_path)]
    return _user_messages(content, content_path)


def _assistant_message(blocks: list, path: str) -> Message:
    message = Message(role="assistant")
    for i, block in enumerate(blocks):
        block_path = f"{path}.{i}"
        kind = _block_type(block, block_path)
        if kind == "text":
            message.content.append(_text_part(block, block_path))
        elif kind == "tool_use":
            message.tool_calls.append(_tool_call(block, block_path))
        elif kind not in _SKIPPED_BLOCKS:
            raise _unsupported_block(kind, "assistant", block_path)
    return message


def _user_messages(blocks: list, path: str) -> list[Message]:
    """Tool results become tool messages first: they answer the previous assistant turn."""
    results: list[Message] = []
    parts: list[Part] = []
    for i, block in enumerate(blocks):
        block_path = f"{path}.{i}"
        kind = _block_type(block, block_path)
        if kind == "tool_result":
            results.append(_tool_result(block, block_path))
        elif kind in ("text", "image"):
            parts.append(_content_part(block, kind, block_path))
        elif kind not in _SKIPPED_BLOCKS:
            raise _unsupported_block(kind, "user", block_path)
    if parts or not results:
        results.append(Message(role="user", content=parts))
    return results


def _block_type(value: object, path: str) -> str:
    block = _object(value, path)
    return _field_string(block, "type", path)


def _unsupported_block(kind: str, role: str, path: str) -> WireError:
    return WireError(
        f"{path}.type: content block type {kind!r} is not supported in {role} messages",
        f"{path}.type",
    )


def _content_part(block: dict, kind: str, path: str) -> Part:
    return _text_part(block, path) if kind == "text" else _image_part(block, path)


def _text_part(block: dict, path: str) -> TextPart:
    return TextPart(_field_string(block, "text", path))


def _image_part(block: dict, path: str) -> ImagePart:
    source_path = f"{path}.source"
    source = _object(_required(block, "source", source_path), source_path)
    kind = source.get("type")
    if kind == "base64":
        media_type = _field_string(source, "media_type", source_path)
        data = _field_string(source, "data", source_path)
        return ImagePart(url=f"data:{media_type};base64,{data}")
    if kind == "url":
        return ImagePart(url=_field_string(source, "url", source_path))
    raise WireError(
        f"{source_path}.type: image source must be 'base64' or 'url', got {shown(kind)}",
        f"{source_path}.type",
    )


def _tool_call(block: dict, path: str) -> ToolCall:
    call_id = _field_string(block, "id", path)
    name = _field_string(block, "name", path)
    arguments = _object(_required(block, "input", f"{path}.input"), f"{path}.input")
    return ToolCall(id=call_id, name=name, arguments=_arguments_text(arguments))


def _tool_result(block: dict, path: str) -> Message:
    call_id, id_path = _child(block, "tool_use_id", path)
    content, content_path = _child(block, "content", path)
    parts: list[Part]
    if content is None:
        parts = []
    elif isinstance(content, str):
        parts = [TextPart(content)] if content else []
    elif isinstance(content, list):
        parts = [_tool_result_part(item, f"{content_path}.{i}") for i, item in enumerate(content)]
    else:
        raise _invalid(content_path, "a string or an array of content blocks", content)
    # Other wire formats have no error flag: say it in the text so the model still sees it.
    if _optional_bool(block.get("is_error"), f"{path}.is_error"):
        parts.insert(0, TextPart(_ERROR_PREFIX))
    return Message(role="tool", content=parts, tool_call_id=_string(call_id, id_path))


def _tool_result_part(value: object, path: str) -> Part:
    kind = _block_type(value, path)
    if kind not in ("text", "image"):
        raise WireError(
            f"{path}.type: tool_result content blocks must be 'text' or 'image', got {shown(kind)}",
            f"{path}.type",
        )
    return _content_part(value, kind, path)


def _parse_tools(value: object) -> list[Tool]:
    if value is None:
        return []
    return [_parse_tool(item, f"tools.{i}") for i, item in enumerate(_array(value, "tools"))]


def _parse_tool(value: object, path: str) -> Tool:
    tool = _object(value, path)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        # Server tools (web search, code execution...) run inside Anthropic's API only.
        raise WireError(f"{path}.type: tool type {kind!r} is not supported", f"{path}.type")
    name = _field_string(tool, "name", path)
    schema_path = f"{path}.input_schema"
    return Tool(
        name=name,
        description=_optional_string(tool.get("description"), f"{path}.description"),
        parameters=_object(_required(tool, "input_schema", schema_path), schema_path),
    )


def _parse_tool_choice(value: object) -> tuple[ToolChoice | None, bool | None]:
    if value is None:
        return None, None
    choice = _object(value, "tool_choice")
    kind = _required(choice, "type", "tool_choice.type")
    if not one_of(kind, _CHOICE_FROM_WIRE):
        raise WireError(
            f"tool_choice.type: must be one of 'auto', 'any', 'tool', 'none', got {shown(kind)}",
            "tool_choice.type",
        )
    name = None
    if kind == "tool":
        name = _string(_required(choice, "name", "tool_choice.name"), "tool_choice.name")
    disable = _optional_bool(
        choice.get("disable_parallel_tool_use"), "tool_choice.disable_parallel_tool_use"
    )
    return ToolChoice(mode=_CHOICE_FROM_WIRE[kind], name=name), (False if disable else None)


# --- tool arguments: JSON text <-> input object ---------------------------------------------


def _arguments_text(arguments: dict) -> str:
    raw = arguments.get(_RAW_KEY)
    if len(arguments) == 1 and isinstance(raw, str):
        return raw
    return orjson.dumps(arguments).decode()


def _tool_input(arguments: str) -> dict:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {_RAW_KEY: arguments}
    return value if isinstance(value, dict) else {_RAW_KEY: arguments}


# --- client direction: rendering ------------------------------------------------------------


def render_response(resp: ChatResponse, model: str) -> dict:
    """A canonical response as an Anthropic Message object, named after the client's model."""
    content: list[dict] = [_text_block(p.text) for p in resp.content if p.text]
    content.extend(_tool_use_block(call) for call in resp.tool_calls)
    return {
        "id": _message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _wire_stop(resp.stop_reason, bool(resp.tool_calls)),
        "stop_sequence": None,
        "usage": _wire_usage(resp.usage),
    }


def render_error(status: int, message: str, error_type: str | None = None) -> dict:
    """Anthropic's error body; the type follows the status unless one is given."""
    if error_type is None:
        error_type = _ERROR_TYPES.get(status) or (
            "invalid_request_error" if 400 <= status < 500 else "api_error"
        )
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def _tool_use_block(call: ToolCall) -> dict:
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": _tool_input(call.arguments),
    }


def _message_id(raw: str) -> str:
    if raw.startswith("msg_"):
        return raw
    return f"msg_{raw}" if raw else f"msg_{uuid.uuid4().hex}"


def _wire_stop(reason: StopReason, has_tool_calls: bool) -> str:
    if reason is StopReason.END and has_tool_calls:
        return "tool_use"
    return _STOP_TO_WIRE[reason]


def _wire_usage(usage: Usage | None) -> dict:
    usage = usage or Usage()
    return {
        "input_tokens": max(usage.input_tokens - usage.cached_input_tokens, 0),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": 0,
    }


def _sse(data: dict) -> bytes:
    return format_sse(orjson.dumps(data), event=data["type"])


class StreamRenderer:
    """Canonical stream events -> Anthropic's SSE protocol, for one client response.

    Canonical streams deliver each tool call's deltas right after its start. Should a
    delta arrive for a call whose block is already closed, it is still sent at that
    block's index: SDK accumulators key by index, so the arguments stay whole.
    """

    def __init__(self, model: str):
        self.model = model
        self._started = False
        self._done = False  # message_stop or error sent: nothing may follow
        self._open: tuple[str, int] | None = None  # ("text", -1) or ("tool", call index)
        self._next_block = 0
        self._tool_blocks: dict[int, int] = {}  # canonical call index -> block index
        self._stop: StopReason | None = None
        self._usage: Usage | None = None

    def render(self, event: StreamEvent) -> bytes:
        if self._done:
            return b""
        match event:
            case StreamStart():
                return self._start(event.id)
            case TextDelta():
                return self._text(event.text)
            case ToolCallStart():
                return self._tool_start(event)
            case ToolCallDelta():
                return self._tool_delta(event)
            case Finish():
                return self._finish(event.stop_reason)
            case UsageReport():
                return self._usage_report(event.usage)
            case StreamError():
                return self._error(event)
        return b""

    def finish(self) -> bytes:
        """Close the message if the upstream ended without Finish or UsageReport."""
        if self._done:
            return b""
        return self._start("") + self._close_block() + self._tail()

    def _start(self, message_id: str) -> bytes:
        if self._started:
            return b""
        self._started = True
        message = {
            "id": _message_id(message_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _sse({"type": "message_start", "message": message})

    def _text(self, text: str) -> bytes:
        if not text:
            return b""
        out = self._start("")
        if self._open != ("text", -1):
            out += self._open_block(("text", -1), {"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        index = self._next_block - 1
        return out + _sse({"type": "content_block_delta", "index": index, "delta": delta})

    def _tool_start(self, event: ToolCallStart) -> bytes:
        if event.index in self._tool_blocks:
            return b""
        self._tool_blocks[event.index] = self._next_block
        block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
        return self._start("") + self._open_block(("tool", event.index), block)

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        index = self._tool_blocks.get(event.index)
        if index is None or not event.arguments:
            return b""  # a delta without its start has no id or name to render
        delta = {"type": "input_json_delta", "partial_json": event.arguments}
        return _sse({"type": "content_block_delta", "index": index, "delta": delta})

    def _open_block(self, key: tuple[str, int], block: dict) -> bytes:
        out = self._close_block()
        self._open = key
        index, self._next_block = self._next_block, self._next_block + 1
        return out + _sse({"type": "content_block_start", "index": index, "content_block": block})

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        kind, call = self._open
        self._open = None
        index = self._tool_blocks[call] if kind == "tool" else self._next_block - 1
        return _sse({"type": "content_block_stop", "index": index})

    def _finish(self, reason: StopReason) -> bytes:
        self._stop = reason
        out = self._start("") + self._close_block()
        return out + self._tail() if self._usage is not None else out

    def _usage_report(self, usage: Usage) -> bytes:
        self._usage = usage
        return self._tail() if self._stop is not None else b""

    def _tail(self) -> bytes:
        self._done = True
        stop = _wire_stop(self._stop or StopReason.END, bool(self._tool_blocks))
        delta = {"stop_reason": stop, "stop_sequence": None}
        usage = _wire_usage(self._usage)
        return _sse({"type": "message_delta", "delta": delta, "usage": usage}) + _sse(
            {"type": "message_stop"}
        )

    def _error(self, event: StreamError) -> bytes:
        self._done = True
        return _sse({"type": "error", "error": {"type": "api_error", "message": event.message}})


# --- upstream direction ---------------------------------------------------------------------


def build_request(req: ChatRequest, model_id: str) -> dict:
    """A canonical request as the JSON body for an Anthropic-format upstream."""
    body: dict[str, Any] = {
        "model": model_id,
        "max_tokens": req.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": _build_messages(req.messages),
    }
    system = [m.text for m in req.messages if m.role == "system" and m.text]
    if system:
        body["system"] = system[0] if len(system) == 1 else [_text_block(t) for t in system]
    if req.tools:
        body["tools"] = [_build_tool(tool) for tool in req.tools]
        choice = _build_tool_choice(req.tool_choice, req.parallel_tool_calls)
        if choice:
            body["tool_choice"] = choice
    optional = {"temperature": req.temperature, "top_p": req.top_p}
    body.update({key: value for key, value in optional.items() if value is not None})
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    if req.user:
        body["metadata"] = {"user_id": req.user}
    body["stream"] = req.stream
    return body


def _build_messages(messages: list[Message]) -> list[dict]:
    """Anthropic wants alternating turns: same-role neighbours, tool results included, merge."""
    turns: list[dict] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _message_blocks(message)
        if not blocks:
            continue  # Anthropic rejects empty content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _message_blocks(message: Message) -> list[dict]:
    if message.role == "tool":
        return [_tool_result_block(message)]
    blocks = _part_blocks(message.content)
    if message.role == "assistant":
        blocks.extend(_tool_use_block(call) for call in message.tool_calls)
    return blocks


def _part_blocks(parts: list[Part]) -> list[dict]:
    """Empty text blocks are dropped: Anthropic rejects them."""
    return [
        _image_block(part.url) if isinstance(part, ImagePart) else _text_block(part.text)
        for part in parts
        if isinstance(part, ImagePart) or part.text
    ]


def _tool_result_block(message: Message) -> dict:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
    content = _part_blocks(message.content)
    if content:
        block["content"] = content
    return block


def _image_block(url: str) -> dict:
    if not url.startswith("data:"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, _, payload = url[len("data:") :].partition(",")
    media_type, *params = header.split(";")
    # Anthropic only takes base64 sources, so percent-encoded data: URLs are re-encoded.
    data = payload if "base64" in params else base64.b64encode(unquote_to_bytes(payload)).decode()
    source = {"type": "base64", "media_type": media_type or "image/png", "data": data}
    return {"type": "image", "source": source}


def _build_tool(tool: Tool) -> dict:
    built: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description:
        built["description"] = tool.description
    return built


def _build_tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict | None:
    if choice is None and parallel is not False:
        return None
    mode = choice.mode if choice else "auto"
    built: dict[str, Any] = {"type": _CHOICE_TO_WIRE[mode]}
    if mode == "tool" and choice is not None:
        built["name"] = choice.name or ""
    if parallel is False and mode != "none":
        built["disable_parallel_tool_use"] = True
    return built


def parse_response(body: dict) -> ChatResponse:
    """An Anthropic Message object from an upstream, as a canonical response."""
    if not isinstance(body, dict):
        raise ValueError(f"Anthropic response: expected a JSON object, got {_describe(body)}")
    content: list[TextPart] = []
    calls: list[ToolCall] = []
    for block in body.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            content.append(TextPart(block.get("text") or ""))
        elif kind == "tool_use":
            calls.append(_upstream_tool_call(block))
    return ChatResponse(
        id=body.get("id") or "",
        model=body.get("model") or "",
        content=content,
        tool_calls=calls,
        stop_reason=_STOP_FROM_WIRE.get(body.get("stop_reason") or "", StopReason.END),
        usage=_TokenCounts().update(body.get("usage")).usage(),
        created=int(time.time()),
    )


def parse_usage(raw: object) -> Usage | None:
    """An Anthropic usage object as canonical usage; None when it is not one."""
    return _TokenCounts().update(raw).usage() if isinstance(raw, dict) else None


def _upstream_tool_call(block: dict) -> ToolCall:
    arguments = block.get("input")
    return ToolCall(
        id=block.get("id") or "",
        name=block.get("name") or "",
        arguments=_arguments_text(arguments if isinstance(arguments, dict) else {}),
    )


class _TokenCounts:
    """Anthropic's usage fields, which message_delta may restate as cumulative totals."""

    __slots__ = ("cache_creation", "cache_read", "input", "output")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_creation = 0

    def update(self, usage: object) -> _TokenCounts:
        if isinstance(usage, dict):
            self.input = _count(usage, "input_tokens", self.input)
            self.output = _count(usage, "output_tokens", self.output)
            self.cache_read = _count(usage, "cache_read_input_tokens", self.cache_read)
            self.cache_creation = _count(usage, "cache_creation_input_tokens", self.cache_creation)
        return self

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.input + self.cache_read + self.cache_creation,
            output_tokens=self.output,
            cached_input_tokens=self.cache_read,
        )


def _count(usage: dict, key: str, default: int) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class StreamParser:
    """Anthropic SSE events from an upstream -> canonical stream events."""

    def __init__(self) -> None:
        self._tokens = _TokenCounts()
        self._tool_index: dict[int, int] = {}  # content block index -> canonical call index

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if not event.data.strip():
            return []
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return [StreamError(f"invalid JSON in Anthropic stream event {event.event!r}")]
        if not isinstance(data, dict):
            return []
        kind = data.get("type") or event.event
        handler = self._HANDLERS.get(kind or "")
        return handler(self, data) if handler else []

    def _message_start(self, data: dict) -> list[StreamEvent]:
        message = data.get("message")
        message = message if isinstance(message, dict) else {}
        self._tokens.update(message.get("usage"))
        start = StreamStart(
            id=message.get("id") or "", model=message.get("model") or "", created=int(time.time())
        )
        return [start]

    def _block_start(self, data: dict) -> list[StreamEvent]:
        block = data.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text":
            return [TextDelta(block["text"])] if block.get("text") else []
        if block.get("type") != "tool_use":
            return []
        call = len(self._tool_index)
        self._tool_index[data.get("index", call)] = call
        events: list[StreamEvent] = [
            ToolCallStart(index=call, id=block.get("id") or "", name=block.get("name") or "")
        ]
        # Anthropic starts with input {}; compatible servers may send the whole input here.
        if isinstance(block.get("input"), dict) and block["input"]:
            events.append(ToolCallDelta(index=call, arguments=_arguments_text(block["input"])))
        return events

    def _block_delta(self, data: dict) -> list[StreamEvent]:
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [TextDelta(delta["text"])]
        call = self._tool_index.get(data.get("index", -1))
        if (
            delta.get("type") == "input_json_delta"
            and delta.get("partial_json")
            and call is not None
        ):
            return [ToolCallDelta(index=call, arguments=delta["partial_json"])]
        return []

    def _message_delta(self, data: dict) -> list[StreamEvent]:
        delta = data.get("delta")
        reason = delta.get("stop_reason") if isinstance(delta, dict) else None
        usage = self._tokens.update(data.get("usage")).usage()
        return [Finish(_STOP_FROM_WIRE.get(reason or "", StopReason.END)), UsageReport(usage)]

    def _error(self, data: dict) -> list[StreamEvent]:
        error = data.get("error")
        error = error if isinstance(error, dict) else {}
        message = error.get("message") or "upstream stream error"
        return [StreamError(message=str(message), type=str(error.get("type") or "api_error"))]

    _HANDLERS: ClassVar[dict[str, Callable[[StreamParser, dict], list[StreamEvent]]]] = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "error": _error,
    }
