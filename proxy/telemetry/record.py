"""What the request path hands to telemetry: one plain record per request.

The gateway fills a `TelemetryRecord` when a request ends and appends it to a queue; the
telemetry worker process turns records into spans, store rows, signals and metrics. A
record holds only plain values (str, int, float, bool, bytes, lists, dicts) so a whole
batch crosses the process boundary in one `pickle.dumps`, and the request path never
parses, analyzes or serializes anything for telemetry.

Times are epoch nanoseconds (what OpenTelemetry spans use). Ids are lower-case hex:
trace ids 32 characters, span ids 16.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class AttemptRecord:
    """One call to an upstream model: a `plano(llm)` span."""

    span_id: str
    model: str  # provider/model_id
    provider: str | None
    outcome: str  # "ok", "HTTP 503", "connect error", "timeout", "malformed response", ...
    start_ns: int
    end_ns: int


@dataclass(slots=True)
class RoutingRecord:
    """The router's decision for the request: a `plano(routing)` span."""

    span_id: str
    start_ns: int
    end_ns: int
    route: str | None
    models: list[str]
    backend: str
    latency_ms: float
    fallback: str | None = None  # why the router failed and the default model served
    cached: bool = False
    pinned: bool = False
    escalated: bool = False
    scores: dict[str, float] = field(default_factory=dict)  # route -> router's score


@dataclass(slots=True)
class StepRecord:
    """A step besides LLM calls: a `plano(<kind>)` span (orchestrator, agent)."""

    kind: str
    name: str
    span_id: str
    start_ns: int
    end_ns: int
    outcome: str = "ok"
    detail: str | None = None
    attributes: dict = field(default_factory=dict)


@dataclass(slots=True)
class RateLimitRecord:
    """The `ratelimits` budget the request was held to (proxy/limits)."""

    model: str
    selector: str  # as configured ("x-team=blue", "x-team", "client_key"): bounded
    limited: bool  # answered 429
    limit: int
    remaining: int


@dataclass(slots=True)
class TelemetryRecord:
    trace_id: str
    span_id: str  # the request's root span, `plano(inbound)`
    sampled: bool  # False: metrics only, nothing stored or exported
    start_ns: int
    end_ns: int
    request_id: str
    listener: str
    api: str  # openai_chat | anthropic_messages | openai_responses
    path: str
    parent_span_id: str | None = None  # from the client's traceparent
    stream: bool = False
    passthrough: bool = False
    requested_model: str | None = None
    model: str | None = None  # provider/model_id that answered
    provider: str | None = None
    status: int = 0
    error: str | None = None
    outcome: str = "ok"  # proxy.gateway.exchange.Outcome's value
    first_token_ns: int | None = None
    # Usage as the upstream reported it; None when it reported none.
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    routing: RoutingRecord | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    session: str | None = None  # X-Model-Affinity
    # tracing.span_attributes: the static ones and the request headers matching a prefix.
    attributes: dict[str, str] = field(default_factory=dict)
    # Sent only for sampled requests, and only when the worker needs them (to store the
    # messages, or to score signals): the client's request body as sent, and the response
    # body as the client received it (JSON, or the SSE text of a stream, capped). Never
    # headers: no credential is ever in a record.
    request_body: bytes | None = None
    response_body: bytes | None = None
    response_truncated: bool = False
    ratelimit: RateLimitRecord | None = None
    # Fields whose text was not valid UTF-8 (a header's \xff byte) and was stored escaped.
    escaped_fields: tuple[str, ...] = ()

    @property
    def ttft_ms(self) -> float | None:
        if self.first_token_ns is None:
            return None
        return (self.first_token_ns - self.start_ns) / 1e6

    @property
    def latency_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6
