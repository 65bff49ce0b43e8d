"""OpenAI Responses API (POST /v1/responses): the client direction only.

Plano never calls a Responses-API upstream: requests are parsed into the canonical model
and canonical results are rendered back as Response objects and Responses streams.

Decisions the two models force:
- Conversation state: `previous_response_id` is not resolved here (the server owns the
  store). `parse_request` returns the `instructions` system message first, then `input`;
  the server inserts stored history between them. `response_messages` is the assistant
  turn a response adds, for the server to store.
- Only function tools: built-in tools (web_search, file_search...), hosted items, stored
  prompts, `conversation` and `background` need OpenAI's servers and are rejected with a
  WireError rather than silently ignored. So is a structured `text.format`: canonical
  requests cannot carry it and the model would answer in free text.
- Input items: consecutive `function_call` items (and one directly after an assistant
  message, which is how `input += response.output` replays a turn) merge into one
  assistant message, the shape every upstream expects. `reasoning` items are skipped:
  they are opaque to every other provider.
- Status: LENGTH and CONTENT_FILTER render as `incomplete` (reason `max_output_tokens` /
  `content_filter`), an ERROR stop as `failed`. Only the last output item, the one being
  generated when the model stopped, is marked `incomplete`.
- Echoed fields: `strict` on tools is echoed as sent, not defaulted to true, since Plano
  does not enforce schemas; `truncation` is always "disabled" (Plano never truncates).
  Canonical usage has no cache-write count, so `cache_write_tokens` is always 0.
- Streams: output items are sequential, as OpenAI sends them: a tool call's start closes
  the item before it. Should a delta arrive for a call already closed, it is still sent at
  that call's output_index and the terminal response carries the whole arguments, which
  is what SDK accumulators end with. The terminal event (which carries usage) is held
  after Finish until UsageReport or `finish()`.
"""

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
from proxy.wire import openai_chat
from proxy.wire.fields import is_int as _is_int
from proxy.wire.fields import new_id as _new_id
from proxy.wire.fields import number_field as _number
from proxy.wire.fields import one_of as _one_of
from proxy.wire.fields import optional_field as _optional
from proxy.wire.fields import shown as _shown
from proxy.wire.sse import format_sse

__all__ = [
    "StreamRenderer",
    "new_response_id",
    "parse_request",
    "previous_response_id",
    "render_error",
    "render_response",
    "response_messages",
    "usage_json",
    "wants_store",
]

_MESSAGE_ROLES = {"user", "assistant", "system", "developer"}
_TOOL_CHOICE_MODES = ("auto", "none", "required")
_IMAGE_DETAILS = {"low", "high", "auto", "original"}
_ERROR_STOP_MESSAGE = "the upstream model ended its response with an error"
_TERMINAL_EVENTS = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
}


# --- parse_request ----------------------------------------------------------------------


def parse_request(body: dict) -> ChatRequest:
    """The JSON body of a client's POST /v1/responses, as a canonical request."""
    if not isinstance(body, dict):
        raise WireError("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError("'model' is required and must be a string", "model")
    _reject_unsupported(body)
    messages: list[Message] = []
    instructions = _optional(body, "instructions", str)
    if instructions:
        messages.append(Message(role="system", content=[TextPart(instructions)]))
    messages.extend(_parse_input(body.get("input"), previous_response_id(body) is not None))
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise WireError("'max_output_tokens' must be a positive integer", "max_output_tokens")
    wants_store(body)  # validated here so a bad value is a 400 before any upstream call
    return ChatRequest(
        model=model,
        messages=messages,
        tools=_parse_tools(body.get("tools")),
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=_optional(body, "parallel_tool_calls", bool),
        max_tokens=max_tokens,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        stream=_optional(body, "stream", bool) is True,
        user=_optional(body, "user", str),
        metadata=_optional(body, "metadata", dict),
    )


def previous_response_id(body: dict) -> str | None:
    """The response this request continues, for the server to resolve from its store."""
    value = body.get("previous_response_id")
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("resp_"):
        raise WireError(
            "'previous_response_id' must be a response id (a string starting with 'resp_')",
            "previous_response_id",
        )
    return value


def wants_store(body: dict) -> bool:
    """Whether the client wants the response stored; OpenAI's default is true."""
    value = body.get("store")
    if value is None:
        return True
    if not isinstance(value, bool):
        raise WireError("'store' must be a boolean", "store")
    return value


def new_response_id() -> str:
    return _new_id("resp_")


def _reject_unsupported(body: dict) -> None:
    for key in ("conversation", "prompt"):
        if body.get(key) is not None:
            raise WireError(f"'{key}' is not supported by Plano", key)
    if body.get("background"):
        raise WireError("'background' responses are not supported by Plano", "background")
    text = body.get("text")
    if text is None:
        return
    if not isinstance(text, dict):
        raise WireError("'text' must be an object", "text")
    fmt = text.get("format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind != "text":
        raise WireError(
            f"'text.format' of type {kind!r} is not supported by Plano; only 'text' is",
            "text.format",
        )


def _parse_input(raw: object, continues: bool) -> list[Message]:
    if isinstance(raw, str):
        return [Message(role="user", content=[TextPart(raw)])]
    if raw is None:
        raise WireError("'input' is required", "input")
    if not isinstance(raw, list):
        raise WireError("'input' must be a string or an array of items", "input")
    if not raw and not continues:
        raise WireError("'input' must not be empty", "input")
    messages: list[Message] = []
    # True while the last message is an assistant turn that function_call items extend.
    extendable = False
    for i, item in enumerate(raw):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise WireError(f"{where} must be an object", where)
        kind = item.get("type")
        if kind == "message" or (kind is None and "role" in item):
            message = _parse_message(item, where)
            messages.append(message)
            extendable = message.role == "assistant"
        elif kind == "function_call":
            call = _parse_function_call(item, where)
            if extendable:
                messages[-1].tool_calls.append(call)
            else:
                messages.append(Message(role="assistant", tool_calls=[call]))
                extendable = True
        elif kind == "function_call_output":
            messages.append(_parse_call_output(item, where))
            extendable = False
        elif kind == "reasoning":
            continue  # between a message and its calls: the calls still merge into it
        elif isinstance(kind, str):
            raise WireError(
                f"{where}: input item type '{kind}' is not supported by Plano", f"{where}.type"
            )
        else:
            raise WireError(f"{where} must be a message or an item with a 'type'", where)
    return messages


def _parse_message(item: dict, where: str) -> Message:
    role = item.get("role")
    if not _one_of(role, _MESSAGE_ROLES):
        raise WireError(
            f"{where}.role must be one of user, assistant, system, developer; got {_shown(role)}",
            f"{where}.role",
        )
    content = _parse_content(item.get("content"), f"{where}.content")
    return Message(role="system" if role == "developer" else role, content=content)


def _parse_content(content: object, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise WireError(f"{where} must be a string or an array of content parts", where)
    parts: list[Part] = []
    for i, part in enumerate(content):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append(TextPart(_string_field(part, "text", at)))
        elif kind == "refusal":
            # A replayed refusal is still what the assistant said.
            parts.append(TextPart(_string_field(part, "refusal", at)))
        elif kind == "input_image":
            parts.append(_parse_image(part, at))
        elif kind in ("input_file", "input_audio"):
            raise WireError(f"{at}: content type '{kind}' is not supported by Plano", f"{at}.type")
        else:
            raise WireError(f"{at} must be an input_text, output_text or input_image part", at)
    return parts


def _parse_image(part: dict, where: str) -> ImagePart:
    url = part.get("image_url")
    if url is None and part.get("file_id") is not None:
        raise WireError(
            f"{where}: images by file_id are not supported by Plano; send image_url",
            f"{where}.file_id",
        )
    if not isinstance(url, str) or not url:
        raise WireError(
            f"{where}.image_url must be a string (an https: or data: URL)", f"{where}.image_url"
        )
    detail = part.get("detail")
    if detail is not None and not _one_of(detail, _IMAGE_DETAILS):
        raise WireError(
            f"{where}.detail must be one of low, high, auto, original; got {_shown(detail)}",
            f"{where}.detail",
        )
    return ImagePart(url=url, detail=detail)


def _parse_function_call(item: dict, where: str) -> ToolCall:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise WireError(f"{where}.call_id is required and must be a string", f"{where}.call_id")
    return ToolCall(
        id=call_id,
        name=_string_field(item, "name", where),
        arguments=_string_field(item, "arguments", where),
    )


def _parse_call_output(item: dict, where: str) -> Message:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise WireError(f"{where}.call_id is required and must be a string", f"{where}.call_id")
    output = item.get("output")
    if isinstance(output, str):
        content: list[Part] = [TextPart(output)]
    elif isinstance(output, list):
        content = _parse_content(output, f"{where}.output")
    else:
        raise WireError(
            f"{where}.output must be a string or an array of content parts", f"{where}.output"
        )
    return Message(role="tool", content=content, tool_call_id=call_id)


def _parse_tools(raw: object) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WireError("'tools' must be an array", "tools")
    tools = []
    for i, item in enumerate(raw):
        where = f"tools[{i}]"
        if not isinstance(item, dict):
            raise WireError(f"{where} must be an object", where)
        kind = item.get("type")
        if kind != "function":
            if isinstance(kind, str):
                raise WireError(
                    f"{where}: tool type '{kind}' is not supported by Plano; "
                    "only function tools are",
                    f"{where}.type",
                )
            raise WireError(f"{where}.type is required", f"{where}.type")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            # The commonest mistake: the Chat Completions shape {"function": {...}}.
            hint = (
                ' (Responses tools are flat: {"type": "function", "name": ...})'
                if "function" in item
                else ""
            )
            raise WireError(f"{where}.name is required{hint}", f"{where}.name")
        parameters = _optional(item, "parameters", dict, where)
        _optional(item, "strict", bool, where)
        tools.append(
            Tool(
                name=name,
                description=_optional(item, "description", str, where),
                parameters=parameters
                if parameters is not None
                else {"type": "object", "properties": {}},
            )
        )
    return tools


def _parse_tool_choice(raw: object) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw in _TOOL_CHOICE_MODES:
        return ToolChoice(mode=raw)
    if isinstance(raw, dict) and raw.get("type") == "function":
        name = raw.get("name")
        if isinstance(name, str) and name:
            return ToolChoice(mode="tool", name=name)
    raise WireError(
        '\'tool_choice\' must be auto, none, required, or {"type": "function", "name": ...}',
        "tool_choice",
    )


# --- rendering --------------------------------------------------------------------------


def response_messages(resp: ChatResponse) -> list[Message]:
    """The assistant turn a response adds to the conversation; none when it said nothing
    (an empty assistant turn is rejected by some upstreams)."""
    if not resp.text and not resp.tool_calls:
        return []
    content: list[Part] = [TextPart(resp.text)] if resp.text else []
    return [Message(role="assistant", content=content, tool_calls=list(resp.tool_calls))]


def render_response(
    resp: ChatResponse,
    model: str,
    response_id: str,
    request_body: dict,
    previous_response_id: str | None = None,
) -> dict:
    """A complete Response object, as POST /v1/responses returns it without streaming."""
    status, reason, error = _outcome(resp.stop_reason)
    output: list[dict] = []
    if resp.text:
        output.append(_message_item(_new_id("msg_"), resp.text, "completed"))
    output.extend(_call_item(_new_id("fc_"), call, "completed") for call in resp.tool_calls)
    if status != "completed" and output:
        output[-1]["status"] = "incomplete"
    return _response_object(
        response_id=response_id,
        model=model,
        created_at=resp.created or int(time.time()),
        status=status,
        output=output,
        usage=usage_json(resp.usage),
        request_body=request_body,
        previous_response_id=previous_response_id,
        incomplete_reason=reason,
        error=error,
    )


def usage_json(usage: Usage | None) -> dict | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def render_error(
    status: int, message: str, error_type: str | None = None, param: str | None = None
) -> dict:
    """The Responses API reports errors exactly like Chat Completions."""
    return openai_chat.render_error(status, message, error_type, param)


def _outcome(stop: StopReason) -> tuple[str, str | None, dict | None]:
    """(status, incomplete reason, error) of a response that stopped for this reason."""
    if stop is StopReason.LENGTH:
        return "incomplete", "max_output_tokens", None
    if stop is StopReason.CONTENT_FILTER:
        return "incomplete", "content_filter", None
    if stop is StopReason.ERROR:
        return "failed", None, _error_json(_ERROR_STOP_MESSAGE)
    return "completed", None, None


def _error_json(message: str) -> dict:
    return {"code": "server_error", "message": message}


def _message_item(item_id: str, text: str, status: str) -> dict:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)],
    }


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call_item(item_id: str, call: ToolCall, status: str) -> dict:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def _response_object(
    *,
    response_id: str,
    model: str,
    created_at: int,
    status: str,
    output: list[dict],
    usage: dict | None,
    request_body: dict,
    previous_response_id: str | None,
    incomplete_reason: str | None = None,
    error: dict | None = None,
) -> dict:
    body = request_body
    parallel = body.get("parallel_tool_calls")
    metadata = body.get("metadata")
    instructions = body.get("instructions")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": _int_or_none(body.get("max_output_tokens")),
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "previous_response_id": previous_response_id or _previous_or_none(body),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store") is not False,
        "temperature": _float_or_none(body.get("temperature")),
        "text": {"format": {"type": "text"}},
        "tool_choice": _echo_tool_choice(body.get("tool_choice")),
        "tools": _echo_tools(body.get("tools")),
        "top_p": _float_or_none(body.get("top_p")),
        "truncation": "disabled",
        "usage": usage,
        "user": body.get("user") if isinstance(body.get("user"), str) else None,
        "metadata": metadata if isinstance(metadata, dict) else {},
    }


def _echo_tools(raw: object) -> list[dict]:
    if not isinstance(raw, list):
        return []
    return [
        {
            "type": "function",
            "name": tool["name"],
            "description": tool.get("description"),
            "parameters": tool.get("parameters"),
            "strict": tool.get("strict"),
        }
        for tool in raw
        if isinstance(tool, dict) and tool.get("type") == "function" and "name" in tool
    ]


def _echo_tool_choice(raw: object) -> str | dict:
    if isinstance(raw, str) and raw in _TOOL_CHOICE_MODES:
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        return {"type": "function", "name": raw["name"]}
    return "auto"


def _previous_or_none(body: dict) -> str | None:
    value = body.get("previous_response_id")
    return value if isinstance(value, str) and value.startswith("resp_") else None


# --- streaming --------------------------------------------------------------------------


class StreamRenderer:
    """Canonical stream events -> the Responses streaming protocol, for one client response.

    `result` is the response accumulated so far, for the server to store after the stream.
    """

    def __init__(
        self,
        model: str,
        response_id: str,
        request_body: dict,
        previous_response_id: str | None = None,
    ):
        self.model = model
        self.response_id = response_id
        self._body = request_body
        self._previous = previous_response_id
        self._created = int(time.time())
        self._sequence = 0
        self._started = False
        self._done = False  # the terminal event was sent: nothing may follow
        # Every output item in output order; open items are mutated as their deltas arrive.
        self._output: list[dict] = []
        self._open: int | None = None  # output index of the item receiving deltas
        self._calls: dict[int, int] = {}  # canonical call index -> output index
        # Deltas not yet written into their item, by output index: joined once when the
        # item is read, since adding each to the item's string copied it every time.
        self._pieces: dict[int, list[str]] = {}
        self._stop: StopReason | None = None
        self._usage: Usage | None = None
        self._error: str | None = None

    @property
    def result(self) -> ChatResponse:
        self._settle()
        text = "".join(
            part["text"]
            for item in self._output
            if item["type"] == "message"
            for part in item["content"]
        )
        calls = [
            ToolCall(id=item["call_id"], name=item["name"], arguments=item["arguments"])
            for item in self._output
            if item["type"] == "function_call"
        ]
        return ChatResponse(
            id=self.response_id,
            model=self.model,
            content=[TextPart(text)] if text else [],
            tool_calls=calls,
            stop_reason=self._stop or StopReason.END,
            usage=self._usage,
            created=self._created,
        )

    def render(self, event: StreamEvent) -> bytes:
        if self._done:
            return b""
        match event:
            case StreamStart():
                if not self._started and event.created:
                    self._created = event.created
                return self._start()
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
                return self._fail(event.message)
        return b""

    def finish(self) -> bytes:
        """End the stream if Finish + UsageReport have not already: exactly one terminal event."""
        if self._done:
            return b""
        out = self._start()
        if self._stop is None:
            out += self._finish(StopReason.END)
        return out if self._done else out + self._terminal()

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        response = self._response("in_progress", output=[])
        return self._emit("response.created", response=response) + self._emit(
            "response.in_progress", response=response
        )

    def _text(self, text: str) -> bytes:
        if not text:
            return b""
        out = self._start()
        if self._open is None or self._output[self._open]["type"] != "message":
            out += self._close("completed")
            # Added with no content, as OpenAI does; the part follows in its own event.
            index, item = self._add(
                _message_item(_new_id("msg_"), "", "in_progress") | {"content": []}
            )
            out += self._emit("response.output_item.added", output_index=index, item=item)
            part = _text_part("")
            item["content"].append(part)
            out += self._emit(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
        index = self._open
        assert index is not None
        item = self._output[index]
        self._pieces.setdefault(index, []).append(text)
        return out + self._emit(
            "response.output_text.delta",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _tool_start(self, event: ToolCallStart) -> bytes:
        if event.index in self._calls:
            return b""
        out = self._start() + self._close("completed")
        call = ToolCall(id=event.id or _new_id("call_"), name=event.name, arguments="")
        index, item = self._add(_call_item(_new_id("fc_"), call, "in_progress"))
        self._calls[event.index] = index
        return out + self._emit("response.output_item.added", output_index=index, item=item)

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        index = self._calls.get(event.index)
        if index is None or not event.arguments:
            return b""  # a delta without its start has no call id or name to render
        item = self._output[index]
        self._pieces.setdefault(index, []).append(event.arguments)
        return self._emit(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=index,
            delta=event.arguments,
        )

    def _finish(self, reason: StopReason) -> bytes:
        if self._stop is not None:
            return b""
        self._stop = reason
        status = "completed" if _outcome(reason)[0] == "completed" else "incomplete"
        out = self._start() + self._close(status)
        return out + self._terminal() if self._usage is not None else out

    def _usage_report(self, usage: Usage) -> bytes:
        self._usage = usage
        return self._terminal() if self._stop is not None else b""

    def _fail(self, message: str) -> bytes:
        out = self._start()
        if self._open is not None:
            self._output[self._open]["status"] = "incomplete"
            self._open = None
        self._stop = StopReason.ERROR
        self._error = message
        return out + self._terminal()

    def _terminal(self) -> bytes:
        self._done = True
        self._settle()
        status, reason, error = _outcome(self._stop or StopReason.END)
        if self._error is not None:
            error = _error_json(self._error)
        response = self._response(
            status, output=self._output, incomplete_reason=reason, error=error
        )
        return self._emit(_TERMINAL_EVENTS[status], response=response)

    def _settle(self) -> None:
        """Write the deltas received so far into their items."""
        for index, pieces in self._pieces.items():
            item = self._output[index]
            if item["type"] == "message":
                item["content"][0]["text"] += "".join(pieces)
            else:
                item["arguments"] += "".join(pieces)
        self._pieces.clear()

    def _add(self, item: dict) -> tuple[int, dict]:
        self._output.append(item)
        self._open = len(self._output) - 1
        return self._open, item

    def _close(self, status: str) -> bytes:
        if self._open is None:
            return b""
        index, self._open = self._open, None
        self._settle()
        item = self._output[index]
        item["status"] = status
        if item["type"] == "message":
            part = item["content"][0]
            out = self._emit(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            ) + self._emit(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
        else:
            out = self._emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        return out + self._emit("response.output_item.done", output_index=index, item=item)

    def _response(
        self,
        status: str,
        output: list[dict],
        incomplete_reason: str | None = None,
        error: dict | None = None,
    ) -> dict:
        return _response_object(
            response_id=self.response_id,
            model=self.model,
            created_at=self._created,
            status=status,
            output=output,
            usage=usage_json(self._usage) if status != "in_progress" else None,
            request_body=self._body,
            previous_response_id=self._previous,
            incomplete_reason=incomplete_reason,
            error=error,
        )

    def _emit(self, kind: str, **fields: Any) -> bytes:
        # Serialized at once, so the mutable item dicts are captured as they are now.
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return format_sse(orjson.dumps(payload), event=kind)


# --- helpers ----------------------------------------------------------------------------


def _int_or_none(value: object) -> int | None:
    return value if _is_int(value) else None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _string_field(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise WireError(f"{where}.{key} is required and must be a string", f"{where}.{key}")
    return value
