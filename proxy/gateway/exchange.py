"""What happened to one client request: the record behind access logs and telemetry."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from proxy.canonical import ChatResponse, Usage

if TYPE_CHECKING:
    from proxy.filters.chain import RequestFilters
    from proxy.limits.tokens import StreamTally
    from proxy.routing.service import RoutingDecision
    from proxy.telemetry.tracecontext import TraceContext

# A stream's text kept for its trace, at most; the rest is cut and marked truncated.
MAX_CAPTURED_RESPONSE = 1 << 20


class Outcome(enum.StrEnum):
    """How a request ended, beyond its status: a stream that failed after its 200 is not ok."""

    OK = "ok"
    ERROR = "error"  # answered with an error status
    # Committed (200 sent), then failed: a stream ended by an error event, or a large
    # answer being relayed that was cut short.
    STREAM_ERROR = "stream_error"
    CLIENT_DISCONNECT = "client_disconnect"
    SHUTDOWN = "shutdown"  # cut by the gateway at the end of its shutdown bound


@dataclass(slots=True)
class Attempt:
    model: str
    outcome: str  # "ok", "HTTP 503", "connect error", "timeout", "malformed response"...
    seconds: float
    provider: str | None = None
    span_id: str | None = None  # the plano(llm) span this call's traceparent named
    started: float = 0.0  # perf_counter


class StepKind(enum.StrEnum):
    """Steps of a request besides its LLM calls; each is a `plano(<kind>)` span."""

    ORCHESTRATOR = "orchestrator"
    AGENT = "agent"
    FILTER = "filter"  # one filter call (input), or one filter over a whole answer (output)


# What a step's attributes may hold: plain values that cross to the telemetry worker.
StepValue = str | int | float | bool | list[str]


@dataclass(slots=True)
class Step:
    """One step of a request (an orchestrator decision, an agent call): a span, and the
    metrics of its kind. A new kind adds a StepKind, not fields across telemetry."""

    kind: StepKind
    name: str  # the agent id; the orchestrator's backend
    span_id: str  # what the step's outgoing traceparent named
    started: float  # perf_counter
    seconds: float = 0.0
    outcome: str = "ok"  # ok, or what went wrong: "HTTP 500", "timeout", "fallback"...
    detail: str | None = None  # why, in words (a fallback's reason, an agent's error)
    attributes: dict[str, StepValue] = field(default_factory=dict)

    def end(self, outcome: str | None = None, detail: str | None = None) -> None:
        self.seconds = time.perf_counter() - self.started
        if outcome is not None:
            self.outcome = outcome
        if detail is not None:
            self.detail = detail


@dataclass(slots=True)
class RateLimitMark:
    """The `ratelimits` budget a request was held to (proxy/limits): the tightest one when
    it passed, the one that refused it otherwise."""

    model: str  # provider/model_id the budget was matched on
    selector: str  # the configured selector: "x-team=blue", "x-team", "client_key"
    limited: bool  # refused with a 429
    limit: int
    remaining: int
    reset_s: float


@dataclass(slots=True)
class Exchange:
    request_id: str
    api: str  # client API: openai_chat, anthropic_messages
    path: str
    requested_model: str | None = None
    model: str | None = None  # provider/model_id that answered
    provider: str | None = None
    passthrough: bool = False
    stream: bool = False
    status: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    usage: Usage | None = None
    result: ChatResponse | None = None  # the parsed answer, when not passed through
    error: str | None = None
    routing: RoutingDecision | None = None  # set when the router chose (or fell back)
    routing_started: float | None = None
    routing_finished: float | None = None
    trace: TraceContext | None = None
    session: str | None = None
    client_key_id: str | None = None  # the id of the listener's client key it came with
    # Telemetry's copy of the exchange's bodies: set only when the trace keeps messages.
    capture: bool = False
    request_body: bytes | None = None
    response_body: bytes | None = None
    response_chunks: list[bytes] | None = None
    response_captured: int = 0  # bytes in response_chunks
    response_truncated: bool = False
    started: float = field(default_factory=time.perf_counter)
    started_ns: int = field(default_factory=time.time_ns)  # the same instant, epoch
    first_token_at: float | None = None
    finished_at: float | None = None
    # Set where the status alone cannot tell (a shutdown); otherwise derived by `outcome`.
    forced_outcome: Outcome | None = None
    ratelimit: RateLimitMark | None = None
    # A rate-limited stream's answer text, counted as it goes: its output debit when the
    # upstream reports no usage.
    output_tally: StreamTally | None = None
    # The request's filtering, when its listener has filters: what the answer must pass.
    filters: RequestFilters | None = None

    @property
    def outcome(self) -> Outcome:
        if self.forced_outcome is not None:
            return self.forced_outcome
        if self.status == 499:
            return Outcome.CLIENT_DISCONNECT
        if not 200 <= self.status < 400:
            return Outcome.ERROR
        return Outcome.STREAM_ERROR if self.error else Outcome.OK

    @property
    def latency_s(self) -> float:
        return (self.finished_at or time.perf_counter()) - self.started

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()

    def epoch_ns(self, moment: float) -> int:
        """A perf_counter reading of this request as epoch nanoseconds, for spans."""
        return self.started_ns + int((moment - self.started) * 1e9)

    def keep_response_chunk(self, data: bytes) -> None:
        if self.response_chunks is None:
            self.response_chunks = []
        room = MAX_CAPTURED_RESPONSE - self.response_captured
        if len(data) > room:
            self.response_truncated = True
            data = data[: max(room, 0)]
        if data:
            self.response_chunks.append(data)
            self.response_captured += len(data)
