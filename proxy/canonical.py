"""The one request, response and stream-event model every wire format converts to and from.

Client formats (OpenAI Chat, Anthropic Messages, OpenAI Responses) parse into these types
and render from them; upstream providers do the same in the other direction. A client
and an upstream that speak the same format skip this model entirely (the passthrough).

Conventions:
- System prompts are `Message(role="system")`, in order; a codec whose wire format has a
  separate system field (Anthropic) moves them there.
- Tool results are `Message(role="tool", tool_call_id=...)`; Anthropic's `tool_result`
  blocks inside a user message become such messages, and back.
- Tool-call arguments are JSON *text*, exactly as the model produced them; streamed
  arguments arrive as fragments of that text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(slots=True)
class ImagePart:
    """An image by URL: https://... or a data: URL (data:image/png;base64,...)."""

    url: str
    detail: str | None = None  # OpenAI's low|high|auto
    type: Literal["image"] = "image"


Part = TextPart | ImagePart


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(slots=True)
class Message:
    role: Role
    content: list[Part] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)  # assistant only
    tool_call_id: str | None = None  # tool only
    name: str | None = None

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(slots=True)
class ToolChoice:
    """auto, none, required (any tool), or one named tool."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None  # with mode "tool"


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    user: str | None = None
    metadata: dict | None = None


class StopReason(StrEnum):
    END = "end"  # natural end of turn
    LENGTH = "length"  # max_tokens reached
    TOOL_CALLS = "tool_calls"
    STOP_SEQUENCE = "stop_sequence"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    content: list[TextPart] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: StopReason = StopReason.END
    usage: Usage | None = None
    created: int = 0  # unix seconds

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content)


# --- stream events --------------------------------------------------------------------
# An upstream stream parses into this sequence, and a client stream renders from it:
#   StreamStart, then any of TextDelta / ToolCallStart / ToolCallDelta, then Finish,
#   then (optionally) UsageReport; or StreamError at any point, which ends the stream.


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    created: int = 0


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolCallStart:
    index: int  # position of this call within the response, from 0
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # a fragment of the JSON text


@dataclass(slots=True)
class Finish:
    stop_reason: StopReason


@dataclass(slots=True)
class UsageReport:
    usage: Usage


@dataclass(slots=True)
class StreamError:
    message: str
    type: str = "upstream_error"


StreamEvent = (
    StreamStart | TextDelta | ToolCallStart | ToolCallDelta | Finish | UsageReport | StreamError
)


class WireError(Exception):
    """A client body that does not fit its API: rendered as a 400 in the client's shape."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class StreamAccumulator:
    """Stream events -> the whole answer: what an intermediate agent hands to the next one,
    and what telemetry reads back out of a captured stream.

    Text and each tool call's argument fragments are kept as pieces and joined once, when
    read (appending to a string would copy it per delta: quadratic in a long stream).
    Usage and the stop reason keep their last value; a StreamError is kept as `error` (the
    answer is then incomplete).
    """

    __slots__ = (
        "_arguments",
        "_calls",
        "_text",
        "created",
        "error",
        "id",
        "model",
        "stop_reason",
        "usage",
    )

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, ToolCall] = {}
        self._arguments: dict[int, list[str]] = {}
        self.id = ""
        self.model = ""
        self.created = 0
        self.stop_reason: StopReason | None = None
        self.usage: Usage | None = None
        self.error: StreamError | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            pieces = self._arguments.get(event.index)
            if pieces is not None:
                pieces.append(event.arguments)
        elif isinstance(event, ToolCallStart):
            if event.index not in self._calls:
                self._calls[event.index] = ToolCall(event.id, event.name, "")
                self._arguments[event.index] = []
        elif isinstance(event, StreamStart):
            self.id, self.model, self.created = event.id, event.model, event.created
        elif isinstance(event, Finish):
            self.stop_reason = event.stop_reason
        elif isinstance(event, UsageReport):
            self.usage = event.usage
        elif isinstance(event, StreamError):
            self.error = event

    def extend(self, events: list[StreamEvent]) -> None:
        for event in events:
            self.add(event)

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(call.id, call.name, "".join(self._arguments[index]))
            for index, call in sorted(self._calls.items())
        ]

    def response(self) -> ChatResponse:
        text = self.text
        return ChatResponse(
            id=self.id,
            model=self.model,
            content=[TextPart(text)] if text else [],
            tool_calls=self.tool_calls,
            stop_reason=self.stop_reason or StopReason.END,
            usage=self.usage,
            created=self.created,
        )


def response_events(response: ChatResponse) -> list[StreamEvent]:
    """A whole answer as the stream that would have carried it: for a client that asked
    to stream from a server that answered in one piece."""
    events: list[StreamEvent] = [StreamStart(response.id, response.model, response.created)]
    if response.text:
        events.append(TextDelta(response.text))
    for index, call in enumerate(response.tool_calls):
        events.append(ToolCallStart(index, call.id, call.name))
        if call.arguments:
            events.append(ToolCallDelta(index, call.arguments))
    events.append(Finish(response.stop_reason))
    if response.usage is not None:
        events.append(UsageReport(response.usage))
    return events
