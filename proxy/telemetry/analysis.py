"""What the telemetry worker reads out of one finished request: its conversation, its
signals and its cost.

The request path stores raw bytes in the record (the client's body, and the JSON or SSE
text it received) so that parsing happens here, in the worker, off the request path. The
bodies are parsed with the wire codecs the gateway itself uses, so the conversation is
read exactly as the gateway understood it.

`analyze_record` never raises: a record is evidence of what happened, and a malformed
body (or a truncated stream) must not cost the request its span and summary. Nor does it
take long: what is over the record's budget (`proxy.telemetry.budget`) is cut, and the
analysis says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.canonical import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamAccumulator,
    TextPart,
    ToolCall,
)
from proxy.pricing import Price, cost_usd, price_for
from proxy.telemetry.budget import RecordBudget
from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.signals import SignalReport
from proxy.telemetry.signals import analyze as analyze_signals
from proxy.wire import anthropic_messages, openai_chat, openai_responses
from proxy.wire.sse import SSEParser

__all__ = ["RecordAnalysis", "analyze_record"]

_REQUEST_PARSERS: dict[str, Callable[[dict], ChatRequest]] = {
    "openai_chat": openai_chat.parse_request,
    "anthropic_messages": anthropic_messages.parse_request,
    "openai_responses": openai_responses.parse_request,
}
_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass(slots=True)
class RecordAnalysis:
    # OpenAI-style message dicts ({role, content: str, tool_calls?, name?, tool_call_id?}),
    # or None when capture is off or the body could not be read.
    request_messages: list[dict[str, Any]] | None = None
    response_messages: list[dict[str, Any]] | None = None
    report: SignalReport | None = None  # None when signals are off
    cost_usd: float | None = None  # None without usage, model or price
    # The two parts of cost_usd: input (cached input at its rate) and output.
    prompt_cost_usd: float | None = None
    completion_cost_usd: float | None = None
    # Whether message capture was on: a signal's snippet quotes a message, so spans and
    # signal rows only carry snippets when it was.
    capture: bool = False
    # What was cut to keep the record within its budget (budget.TEXT, MESSAGES, STREAM,
    # TIME): empty when the messages are whole.
    cuts: frozenset[str] = frozenset()

    @property
    def truncated(self) -> bool:
        return bool(self.cuts)


def analyze_record(
    record: TelemetryRecord,
    *,
    signals: bool,
    capture: bool,
    price_overrides: Mapping[str, Price] | None = None,
) -> RecordAnalysis:
    """The conversation, signals and cost of one record; never raises."""
    try:
        return _analyze(record, signals, capture, price_overrides)
    except Exception:  # a record of any shape must not stop the worker
        return RecordAnalysis(capture=capture)


def _analyze(
    record: TelemetryRecord,
    want_signals: bool,
    capture: bool,
    overrides: Mapping[str, Price] | None,
) -> RecordAnalysis:
    analysis = RecordAnalysis(capture=capture)
    _guard(lambda r: _price(r, overrides, analysis), record)
    # The bodies are needed for signals even when they are not to be stored.
    if not (want_signals or capture):
        return analysis
    budget = RecordBudget()
    request = _guard(lambda r: _request_messages(r, budget), record)
    reply = _guard(lambda r: _response_message(r, budget), record)
    # As the store keeps them, and cut to the budget: signals read what is stored, so a
    # signal's message index points into the stored messages.
    request_json = [_message_json(m) for m in request] if request is not None else None
    reply_json = _message_json(reply) if reply is not None else None
    budget.fit([*(request_json or ()), *([reply_json] if reply_json else ())])
    if want_signals and not budget.out_of_time():
        analysis.report = analyze_signals(
            request_json or (), reply_json, error=record.error, status=record.status or None
        )
    if capture:
        analysis.request_messages = request_json
        analysis.response_messages = [reply_json] if reply_json is not None else None
    analysis.cuts = frozenset(budget.cuts)
    return analysis


def _guard(read: Callable[[TelemetryRecord], Any], record: TelemetryRecord) -> Any:
    """One stage's result, or None: a broken response must not lose the request, nor a
    broken price the signals."""
    try:
        return read(record)
    except Exception:
        return None


# --- cost -------------------------------------------------------------------------------


def _price(
    record: TelemetryRecord, overrides: Mapping[str, Price] | None, analysis: RecordAnalysis
) -> None:
    model, fresh_and_cached, output = record.model, record.input_tokens, record.output_tokens
    if model is None or fresh_and_cached is None or output is None:
        return
    cached = record.cached_input_tokens or 0
    analysis.cost_usd = cost_usd(model, fresh_and_cached, output, cached, overrides)
    price = price_for(model, overrides)
    if price is None or analysis.cost_usd is None:
        return
    # Same arithmetic as pricing.cost_usd, kept in two parts for the llm span.
    cached = min(max(cached, 0), max(fresh_and_cached, 0))
    cached_rate = price.input_per_mtok
    if price.cached_input_per_mtok is not None:
        cached_rate = price.cached_input_per_mtok
    fresh = max(fresh_and_cached, 0) - cached
    analysis.prompt_cost_usd = (fresh * price.input_per_mtok + cached * cached_rate) / 1e6
    analysis.completion_cost_usd = max(output, 0) * price.output_per_mtok / 1e6


# --- request ----------------------------------------------------------------------------


def _request_messages(record: TelemetryRecord, budget: RecordBudget) -> list[Message] | None:
    parse = _REQUEST_PARSERS.get(record.api)
    if parse is None or not record.request_body:
        return None
    body = orjson.loads(record.request_body)
    if not isinstance(body, dict):
        return None
    # orjson reads any body the gateway took in ~10 ms a MB; the codecs' Python would take
    # seconds over a million messages, so they get the newest ones only.
    budget.newest_messages(body, "input" if record.api == "openai_responses" else "messages")
    budget.first_parts(body, "system")
    return parse(body).messages


# --- response ---------------------------------------------------------------------------


def _response_message(record: TelemetryRecord, budget: RecordBudget) -> Message | None:
    """The assistant's answer as the client received it, or None if it got none."""
    raw = record.response_body
    if not raw:
        return None
    if record.stream:
        raw = budget.stream(raw)
        if record.api == "openai_responses":
            return _responses_stream(raw, budget)
        if record.api == "openai_chat":
            return _codec_stream(raw, openai_chat.StreamParser(), budget)
        if record.api == "anthropic_messages":
            return _codec_stream(raw, anthropic_messages.StreamParser(), budget)
        return None
    if record.status >= 400:
        return None  # the body is an error object, not an answer
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        return None
    if record.api == "openai_responses":
        return _responses_output(body.get("output"))
    if record.api == "openai_chat":
        return _assistant(openai_chat.parse_response(body))
    if record.api == "anthropic_messages" and body.get("type") != "error":
        return _assistant(anthropic_messages.parse_response(body))
    return None


def _assistant(response: ChatResponse) -> Message | None:
    if not response.text and not response.tool_calls:
        return None
    content = [TextPart(response.text)] if response.text else []
    return Message(role="assistant", content=content, tool_calls=list(response.tool_calls))


# Events replayed between two looks at the record's CPU time.
_EVENTS_PER_CHECK = 256


def _sse_events(raw: bytes, budget: RecordBudget) -> Iterable[Any]:
    """The stream's events, until the record's CPU time runs out."""
    parser = SSEParser()
    # A truncated stream may end inside an event; the codecs turn its broken JSON into a
    # StreamError, which is ignored like any other.
    for n, event in enumerate((*parser.feed(raw), *parser.flush()), 1):
        if n % _EVENTS_PER_CHECK == 0 and budget.out_of_time():
            return
        yield event


def _codec_stream(raw: bytes, parser: Any, budget: RecordBudget) -> Message | None:
    """Rebuild the answer from a Chat Completions or Anthropic stream."""
    answer = StreamAccumulator()
    for sse in _sse_events(raw, budget):
        answer.extend(parser.feed(sse))
    return _message(answer.text, answer.tool_calls)


def _responses_stream(raw: bytes, budget: RecordBudget) -> Message | None:
    """The terminal event carries the whole response; without it (a truncated stream),
    the output items are rebuilt from the events that did arrive."""
    rebuilt = _ResponsesItems()
    for sse in _sse_events(raw, budget):
        try:
            data = orjson.loads(sse.data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        kind = data.get("type") or sse.event
        if kind in _RESPONSES_TERMINAL and isinstance(data.get("response"), dict):
            return _responses_output(data["response"].get("output"))
        rebuilt.apply(kind, data)
    return _responses_output(rebuilt.items())


class _ResponsesItems:
    """Output items rebuilt from a Responses stream's events. Deltas are kept as lists of
    pieces and joined once at the end: concatenating at each delta was quadratic."""

    def __init__(self) -> None:
        self.by_index: dict[int, dict[str, Any]] = {}
        self.text: dict[int, list[str]] = {}  # text deltas of a message item
        self.arguments: dict[int, list[str]] = {}  # argument deltas of a function call

    def apply(self, kind: str | None, data: dict) -> None:
        index = data.get("output_index")
        if not isinstance(index, int):
            return
        delta = data.get("delta")
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = data.get("item")
            if isinstance(item, dict):
                self.by_index[index] = dict(item)
                self.text.pop(index, None)
                self.arguments.pop(index, None)
        elif kind == "response.output_text.delta" and isinstance(delta, str):
            self.by_index.setdefault(index, {"type": "message", "content": []})
            self.text.setdefault(index, []).append(delta)
        elif kind == "response.function_call_arguments.delta" and isinstance(delta, str):
            item = self.by_index.get(index)
            if item is not None:
                pieces = self.arguments.setdefault(index, [str(item.get("arguments") or "")])
                pieces.append(delta)

    def items(self) -> list[dict[str, Any]]:
        out = []
        for index in sorted(self.by_index):
            item = self.by_index[index]
            if index in self.text:  # the text that arrived while the item was open
                text = "".join(self.text[index])
                item["content"] = [{"type": "output_text", "text": text}]
            if index in self.arguments:
                item["arguments"] = "".join(self.arguments[index])
            out.append(item)
        return out


def _responses_output(output: object) -> Message | None:
    """A Responses `output` array as one assistant message: message items' text and
    function_call items' calls."""
    if not isinstance(output, list):
        return None
    text: list[str] = []
    calls: list[ToolCall] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") in ("output_text", "refusal"):
                    value = part.get("text", part.get("refusal"))
                    text.append(value if isinstance(value, str) else "")
        elif item.get("type") == "function_call" and isinstance(item.get("name"), str):
            arguments = item.get("arguments")
            calls.append(
                ToolCall(
                    id=str(item.get("call_id") or item.get("id") or ""),
                    name=item["name"],
                    arguments=arguments if isinstance(arguments, str) else "",
                )
            )
    return _message("".join(text), calls)


def _message(text: str, calls: list[ToolCall]) -> Message | None:
    if not text and not calls:
        return None
    return Message(role="assistant", content=[TextPart(text)] if text else [], tool_calls=calls)


# --- storage shape ----------------------------------------------------------------------


def _message_json(message: Message) -> dict[str, Any]:
    """The OpenAI-style dict the store keeps: text only, since an image's data URL can be
    megabytes and no view shows it."""
    out: dict[str, Any] = {"role": message.role, "content": message.text}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.name:
        out["name"] = message.name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out
