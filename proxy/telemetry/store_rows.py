"""The rows the trace store writes and returns: plain dataclasses, one per table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class TraceStoreError(Exception):
    """The trace store cannot be used as asked (a newer schema, an unreadable file)."""


@dataclass(slots=True)
class RequestRow:
    """One request's summary: what a list of traces shows without reading its spans."""

    trace_id: str
    started_at: float
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
    status: int | None = None
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
    # Any JSON value; only present when message capture is on.
    request_messages: Any = None
    response_messages: Any = None


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
    request: RequestRow | None  # None while only spans have arrived
    spans: list[SpanRow]
    events: list[SpanEventRow]
    signals: list[SignalRow]


@dataclass(slots=True)
class GroupStats:
    key: str | None  # the model or route; None for requests without one
    count: int
    errors: int  # status >= 400
    error_rate: float
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    p50_ttft_ms: float | None
    p95_ttft_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
