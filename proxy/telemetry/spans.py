"""One finished request as OpenTelemetry spans, named and attributed as upstream Plano's.

    plano(inbound)         SERVER   the client's request, start to end
    ├─ plano(routing)      INTERNAL the router's decision, when the request was routed
    ├─ plano(llm)          CLIENT   one per upstream attempt (a failover makes several)
    ├─ plano(orchestrator) INTERNAL an agent listener's choice of agents
    └─ plano(agent)        CLIENT   one per agent called, in order

The spans are built after the fact from the record rather than recorded live: the request
path only notes ids and times, and the ids are the ones it already sent upstream in
`traceparent`, so an upstream's own spans join this trace.

Spans never carry message bodies, headers or keys. A signal's snippet quotes a message,
so signal events carry it only when message capture is on.
"""

from __future__ import annotations

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from proxy.telemetry.analysis import RecordAnalysis
from proxy.telemetry.record import AttemptRecord, RoutingRecord, StepRecord, TelemetryRecord

__all__ = [
    "AGENT",
    "FILTER",
    "INBOUND",
    "LLM",
    "ORCHESTRATOR",
    "ROUTING",
    "build_spans",
    "step_span_name",
]

INBOUND = "plano(inbound)"
ROUTING = "plano(routing)"
LLM = "plano(llm)"
ORCHESTRATOR = "plano(orchestrator)"
AGENT = "plano(agent)"
FILTER = "plano(filter)"
# A step that calls out (an agent) is a client span; one that decides is internal.
_STEP_KINDS = {"agent": SpanKind.CLIENT}
# The attribute that names a step, per kind; other kinds use `<kind>.name`.
# A filter step's name is its id: proxy.filters.verdict.ATTR_ID, which the store indexes.
_STEP_NAME_KEYS = {
    "agent": "agent.id",
    "orchestrator": "orchestrator.backend",
    "filter": "filter.id",
}

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)

Attributes = dict[str, AttributeValue]


def build_spans(
    record: TelemetryRecord,
    analysis: RecordAnalysis,
    resource: Resource,
    scope: InstrumentationScope,
) -> list[ReadableSpan]:
    """The request's spans, root first. Raises ValueError if an id is not hex."""
    trace_id = int(record.trace_id, 16)
    root = SpanContext(trace_id, int(record.span_id, 16), is_remote=False, trace_flags=_SAMPLED)
    parent = None
    if record.parent_span_id:
        parent = SpanContext(
            trace_id, int(record.parent_span_id, 16), is_remote=True, trace_flags=_SAMPLED
        )

    def span(
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        start_ns: int,
        end_ns: int,
        attributes: Attributes,
        status: Status = _UNSET,
        events: tuple[Event, ...] = (),
    ) -> ReadableSpan:
        # Configured span attributes go on every span; Plano's own keys win a clash, so a
        # request header cannot rewrite, say, the status code.
        return ReadableSpan(
            name=name,
            context=context,
            parent=parent,
            resource=resource,
            attributes={**record.attributes, **attributes},
            events=events,
            kind=kind,
            status=status,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=scope,
        )

    spans = [
        span(
            INBOUND,
            root,
            parent,
            SpanKind.SERVER,
            record.start_ns,
            record.end_ns,
            _inbound_attributes(record, analysis),
            _inbound_status(record),
            _signal_events(record, analysis),
        )
    ]
    routing = record.routing
    if routing is not None:
        context = SpanContext(trace_id, int(routing.span_id, 16), False, _SAMPLED)
        status = _UNSET if routing.fallback is None else Status(StatusCode.ERROR, routing.fallback)
        spans.append(
            span(
                ROUTING,
                context,
                root,
                SpanKind.INTERNAL,
                routing.start_ns,
                routing.end_ns,
                _routing_attributes(record, routing),
                status,
            )
        )
    answered = _answering_attempt(record.attempts)
    for attempt in record.attempts:
        context = SpanContext(trace_id, int(attempt.span_id, 16), False, _SAMPLED)
        ok = attempt.outcome == "ok"
        attributes = _attempt_attributes(attempt)
        events: tuple[Event, ...] = ()
        if attempt is answered:
            attributes |= _answer_attributes(record, analysis, attempt)
            if record.first_token_ns is not None:
                events = (Event("first_token", {}, timestamp=record.first_token_ns),)
        spans.append(
            span(
                LLM,
                context,
                root,
                SpanKind.CLIENT,
                attempt.start_ns,
                attempt.end_ns,
                attributes,
                _UNSET if ok else Status(StatusCode.ERROR, attempt.outcome),
                events,
            )
        )
    for step in record.steps:
        context = SpanContext(trace_id, int(step.span_id, 16), False, _SAMPLED)
        spans.append(
            span(
                step_span_name(step.kind),
                context,
                root,
                _STEP_KINDS.get(step.kind, SpanKind.INTERNAL),
                step.start_ns,
                step.end_ns,
                _step_attributes(step),
                _UNSET if step.outcome == "ok" else Status(StatusCode.ERROR, step.detail),
            )
        )
    return spans


def step_span_name(kind: str) -> str:
    return f"plano({kind})"


def _step_attributes(step: StepRecord) -> Attributes:
    kind = step.kind
    out: Attributes = {
        _STEP_NAME_KEYS.get(kind, f"{kind}.name"): step.name,
        f"{kind}.outcome": step.outcome,
        f"{kind}.duration_ms": (step.end_ns - step.start_ns) / 1e6,
    }
    _put(out, f"{kind}.detail", step.detail)
    for key, value in step.attributes.items():
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


# --- plano(inbound) ---------------------------------------------------------------------


def _inbound_attributes(record: TelemetryRecord, analysis: RecordAnalysis) -> Attributes:
    out: Attributes = {
        "http.request.method": "POST",
        "url.path": record.path,
        "plano.request_id": record.request_id,
        "plano.listener": record.listener,
        "plano.api": record.api,
        "llm.is_streaming": record.stream,
        "plano.passthrough": record.passthrough,
    }
    if record.status:  # 0: the client never got a status (it went away first)
        out["http.response.status_code"] = record.status
    _put(out, "llm.model", record.requested_model)
    _put(out, "route.selected_model", record.model)
    _put(out, "llm.provider", record.provider)
    _put(out, "session.id", record.session)
    # The stored messages are not the whole exchange: the gateway kept only the head of a
    # long stream, or the record was over its budget (proxy.telemetry.budget).
    if analysis.truncated or record.response_truncated:
        out["plano.messages.truncated"] = True
    report = analysis.report
    if report is not None:
        out["signals.quality"] = report.quality
        out["signals.quality_score"] = report.score
        out["signals.count"] = len(report.signals)
        out["signals.turn_count"] = report.turn_count
        out["signals.efficiency"] = report.efficiency
    return out


def _inbound_status(record: TelemetryRecord) -> Status:
    # OpenTelemetry's HTTP server convention: a 4xx is the client's error, not the
    # server's, so the span stays UNSET and the status code attribute tells it.
    if 400 <= record.status < 500:
        return _UNSET
    if record.status >= 500 or record.error:
        return Status(StatusCode.ERROR, record.error or f"HTTP {record.status}")
    return _UNSET


def _signal_events(record: TelemetryRecord, analysis: RecordAnalysis) -> tuple[Event, ...]:
    if analysis.report is None:
        return ()
    events = []
    for signal in analysis.report.signals:
        attributes: Attributes = {
            "type": signal.type,
            "group": signal.group,
            "message_index": signal.message_index,
            "confidence": signal.confidence,
        }
        if analysis.capture:
            attributes["snippet"] = signal.snippet
        events.append(Event(f"signal.{signal.type}", attributes, timestamp=record.end_ns))
    return tuple(events)


# --- plano(routing) ---------------------------------------------------------------------


def _routing_attributes(record: TelemetryRecord, routing: RoutingRecord) -> Attributes:
    out: Attributes = {
        "routing.determination_ms": routing.latency_ms,
        "route.name": routing.route or "none",
        "route.models": tuple(routing.models),
        "router.backend": routing.backend,
        "router.cached": routing.cached,
        "router.pinned": routing.pinned,
        "router.escalated": routing.escalated,
    }
    # The router's first choice; with no choice, the default model that served instead.
    _put(out, "route.selected_model", routing.models[0] if routing.models else record.model)
    _put(out, "router.fallback", routing.fallback)
    if routing.scores:
        # One attribute, not one per route: route names are free text, attribute keys
        # should not be. JSON keeps the name -> score pairs together.
        out["router.scores"] = orjson.dumps(routing.scores).decode()
    return out


# --- plano(llm) -------------------------------------------------------------------------


def _answering_attempt(attempts: list[AttemptRecord]) -> AttemptRecord | None:
    """The attempt whose answer the client got: the last that succeeded."""
    return next((a for a in reversed(attempts) if a.outcome == "ok"), None)


def _attempt_attributes(attempt: AttemptRecord) -> Attributes:
    out: Attributes = {
        "llm.model": attempt.model,
        "llm.outcome": attempt.outcome,
        "llm.duration_ms": (attempt.end_ns - attempt.start_ns) / 1e6,
    }
    _put(out, "llm.provider", attempt.provider)
    return out


def _answer_attributes(
    record: TelemetryRecord, analysis: RecordAnalysis, attempt: AttemptRecord
) -> Attributes:
    out: Attributes = {}
    first = record.first_token_ns
    if first is not None:
        out["llm.time_to_first_token"] = (first - attempt.start_ns) / 1e6
        if record.output_tokens is not None and record.output_tokens > 1:
            # The first token's wait is latency, not generation: it is left out.
            per_token_ns = (attempt.end_ns - first) / (record.output_tokens - 1)
            out["llm.time_per_output_token_ms"] = per_token_ns / 1e6
    _put(out, "llm.usage.prompt_tokens", record.input_tokens)
    _put(out, "llm.usage.completion_tokens", record.output_tokens)
    if record.input_tokens is not None and record.output_tokens is not None:
        out["llm.usage.total_tokens"] = record.input_tokens + record.output_tokens
    _put(out, "llm.usage.cached_input_tokens", record.cached_input_tokens)
    _put(out, "llm.usage.reasoning_tokens", record.reasoning_tokens)
    _put(out, "llm.usage.cost_usd", analysis.cost_usd)
    _put(out, "llm.usage.prompt_cost_usd", analysis.prompt_cost_usd)
    _put(out, "llm.usage.completion_cost_usd", analysis.completion_cost_usd)
    return out


def _put(out: dict[str, AttributeValue], key: str, value: AttributeValue | None) -> None:
    if value is not None:
        out[key] = value
