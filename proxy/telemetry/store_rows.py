"""The rows the trace store writes and returns: plain dataclasses, one per table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TraceStoreError(Exception):
    """The trace store cannot be used as asked (a newer schema, an unreadable file)."""


@dataclass(slots=True)
class RequestRow:
    """One request through the gateway (a call): its summary, without its spans.

    A trace holds one or more: an agent's run sends many calls under one traceparent. The
    store keys a call by its own root span, `plano(inbound)`, so calls never overwrite
    one another; `TraceRow` adds them up.
    """

    trace_id: str
    started_at: float
    span_id: str | None = None  # the call's plano(inbound) span: its key in the store
    request_id: str | None = None
    listener: str | None = None
    api: str | None = None  # openai_chat | anthropic_messages | openai_responses
    path: str | None = None
    route: str | None = None
    router_backend: str | None = None
    routing_fallback: str | None = None
    requested_model: str | None = None
    model: str | None = None
    provider: str | None = None
    status: int | None = None  # what the client got in its headers
    # How it ended (proxy.gateway.exchange.Outcome): ok, error, stream_error,
    # client_disconnect, shutdown. A stream that fails after its 200 is stream_error.
    outcome: str | None = None
    error: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    stream: bool = False
    signal_quality: str | None = None
    signal_score: int | None = None
    signal_count: int | None = None
    session: str | None = None
    # The start of the trace's first call: set by the store when it writes the row.
    trace_started_at: float | None = None
    # Any JSON value; only present when message capture is on.
    request_messages: Any = None
    response_messages: Any = None


@dataclass(slots=True)
class TraceRow:
    """One trace: its calls added up. What the list shows, one line a trace.

    Sums: tokens and cost (of the calls that reported them; None when none did). The
    trace's latency is its wall-clock span, from the first call's start to the last one's
    end; its TTFT is the first call's. `status` and `outcome` are the worst any call got
    (see store_traces); `model` and `route` are set when every call had the same one, and
    `models` / `routes` count the distinct ones.
    """

    trace_id: str
    started_at: float  # the first call's start
    ended_at: float | None = None  # the last call's end
    latency_ms: float | None = None
    calls: int = 0
    ttft_ms: float | None = None
    status: int | None = None
    outcome: str | None = None
    error: str | None = None  # the first failed call's
    model: str | None = None
    models: int = 0
    requested_model: str | None = None
    provider: str | None = None
    route: str | None = None
    routes: int = 0
    router_backend: str | None = None
    routing_fallback: str | None = None  # the first call's that fell back
    listener: str | None = None  # the first call's, as are api, path and session
    api: str | None = None
    path: str | None = None
    session: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    stream: bool = False  # any call streamed
    signal_quality: str | None = None  # the worst call's
    signal_score: int | None = None  # the lowest
    signal_count: int | None = None  # the signals stored for the trace
    # The filters that blocked one of its calls, in the order they ran (store_filters):
    # enforced (the client got the block), and in observe mode (it would have).
    blocked_by: list[str] = field(default_factory=list)
    would_block: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SpanRow:
    span_id: str
    trace_id: str
    name: str
    start_ns: int
    end_ns: int | None = None
    parent_id: str | None = None
    kind: str | None = None
    status_code: str | None = None
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SpanEventRow:
    span_id: str
    trace_id: str
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    # Derived from (span_id, name, time_ns) on write, so a re-sent event is not duplicated.
    id: str | None = None


@dataclass(slots=True)
class SignalRow:
    trace_id: str
    type: str
    group: str | None = None
    message_index: int | None = None
    confidence: float | None = None
    snippet: str | None = None
    # Derived from (trace_id, type, message_index, snippet) on write, as for events.
    id: str | None = None


@dataclass(slots=True)
class StoreBatch:
    requests: list[RequestRow] = field(default_factory=list)
    spans: list[SpanRow] = field(default_factory=list)
    events: list[SpanEventRow] = field(default_factory=list)
    signals: list[SignalRow] = field(default_factory=list)


@dataclass(slots=True)
class TraceDetail:
    trace_id: str
    summary: TraceRow | None  # None while only spans have arrived
    calls: list[RequestRow]  # oldest first, with their messages
    spans: list[SpanRow]
    events: list[SpanEventRow]
    signals: list[SignalRow]


@dataclass(slots=True)
class GroupStats:
    """Per model or route: counts are of calls, percentiles over each call's own latency."""

    key: str | None  # the model or route; None for calls without one
    count: int
    errors: int  # calls that did not end ok: an error status, a failed stream...
    error_rate: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p50_ttft_ms: float | None
    p95_ttft_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
