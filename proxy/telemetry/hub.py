"""The request path's side of telemetry: start a request's trace, and hand its record on.

Per request this does what cannot wait: read the traceparent, make ids, decide sampling,
and, when the request ends, copy the exchange into a `TelemetryRecord` and append it to
the sink. Everything else (spans, signals, cost, SQLite, OTLP, metrics) happens in the
telemetry worker process, on another core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from proxy.filters.verdict import ATTR_DECISION, ATTR_DIRECTION, ATTR_MODE
from proxy.telemetry.record import (
    AttemptRecord,
    RateLimitRecord,
    RoutingRecord,
    StepRecord,
    TelemetryRecord,
)
from proxy.telemetry.storable import escape_surrogates, is_utf8
from proxy.telemetry.tracecontext import Sampler, TraceContext, new_span_id

if TYPE_CHECKING:
    from aiohttp import web

    from proxy.config.model import Tracing
    from proxy.gateway.exchange import Exchange

TRACE_ID_HEADER = "x-plano-trace-id"  # on every response: what `plano traces show` takes
MAX_ATTRIBUTE_VALUE = 256
CLIENT_KEY_ATTRIBUTE = "plano.client_key_id"  # listeners[].auth: who called
# A prefix as wide as "x-" must still never copy a credential onto a span.
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie", "password", "signature")


class RecordSink(Protocol):
    def put(self, record: TelemetryRecord) -> None: ...


class TelemetryHub:
    """One per listener. Without a sink, traces still propagate; nothing is recorded."""

    def __init__(
        self,
        tracing: Tracing,
        listener: str,
        sink: RecordSink | None = None,
        *,
        capture: bool = False,
    ):
        self.listener = listener
        self.sink = sink
        self.sampler = Sampler(tracing.random_sampling)
        self.capture = capture and sink is not None
        self.header_prefixes = tuple(p.lower() for p in tracing.header_prefixes if p)
        self.static_attributes = dict(tracing.static_attributes)

    def start(self, request: web.Request, exchange: Exchange) -> TraceContext:
        trace = self.sampler.start(request.headers.get("traceparent"))
        exchange.trace = trace
        exchange.capture = self.capture and trace.sampled
        return trace

    def finish(self, request: web.Request, exchange: Exchange) -> None:
        if self.sink is None or exchange.trace is None:
            return
        self.sink.put(self.record(request, exchange))

    def record(self, request: web.Request, exchange: Exchange) -> TelemetryRecord:
        trace = exchange.trace
        assert trace is not None
        usage = exchange.usage
        sampled = trace.sampled
        finished = exchange.finished_at if exchange.finished_at is not None else exchange.started
        record = TelemetryRecord(
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            sampled=sampled,
            start_ns=exchange.started_ns,
            end_ns=exchange.epoch_ns(finished),
            request_id=exchange.request_id,
            listener=self.listener,
            api=exchange.api,
            path=exchange.path,
            parent_span_id=trace.parent_span_id,
            stream=exchange.stream,
            passthrough=exchange.passthrough,
            requested_model=exchange.requested_model,
            model=exchange.model,
            provider=exchange.provider,
            status=exchange.status,
            error=exchange.error,
            outcome=exchange.outcome.value,
            first_token_ns=None
            if exchange.first_token_at is None
            else exchange.epoch_ns(exchange.first_token_at),
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            cached_input_tokens=usage.cached_input_tokens if usage else None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            routing=_routing(exchange),
            attempts=[
                AttemptRecord(
                    span_id=a.span_id or new_span_id(),
                    model=a.model,
                    provider=a.provider,
                    outcome=a.outcome,
                    start_ns=exchange.epoch_ns(a.started),
                    end_ns=exchange.epoch_ns(a.started + a.seconds),
                )
                for a in exchange.attempts
            ],
            steps=[
                StepRecord(
                    kind=step.kind.value,
                    name=step.name,
                    span_id=step.span_id,
                    start_ns=exchange.epoch_ns(step.started),
                    end_ns=exchange.epoch_ns(step.started + step.seconds),
                    outcome=step.outcome,
                    detail=step.detail,
                    attributes=step.attributes if sampled else _for_metrics(step.attributes),
                )
                for step in exchange.steps
            ],
            session=exchange.session,
            attributes=self._attributes(request.headers, exchange) if sampled else {},
            request_body=exchange.request_body,
            response_body=_response_body(exchange),
            response_truncated=exchange.response_truncated,
            ratelimit=_ratelimit(exchange),
        )
        _escape_text(record)
        return record

    def _attributes(self, headers: Mapping[str, str], exchange: Exchange) -> dict[str, str]:
        attributes = dict(self.static_attributes)
        if exchange.client_key_id is not None:  # the key's id, never the key
            attributes[CLIENT_KEY_ATTRIBUTE] = exchange.client_key_id
        if self.header_prefixes:
            for name, value in headers.items():
                lowered = name.lower()
                if lowered.startswith(self.header_prefixes) and not any(
                    word in lowered for word in _SECRET_HEADER_WORDS
                ):
                    attributes[lowered] = value[:MAX_ATTRIBUTE_VALUE]
        return attributes


# The record's text that a client can put there: header values (request id, affinity,
# span attributes), the path, the model it asked for, an error that quotes one of them.
_CLIENT_TEXT = ("request_id", "path", "requested_model", "error", "session")


def _escape_text(record: TelemetryRecord) -> None:
    """Write out what is not valid UTF-8 (a header byte like \\xff, which aiohttp decodes as
    a lone surrogate): the record must be storable and exportable as it is. The fields
    changed are named in the record, for the worker to count."""
    escaped = [
        name
        for name in _CLIENT_TEXT
        if isinstance(value := getattr(record, name), str) and not is_utf8(value)
    ]
    for name in escaped:
        setattr(record, name, escape_surrogates(getattr(record, name)))
    attributes = record.attributes
    if not all(map(is_utf8, attributes.values())) or not all(map(is_utf8, attributes)):
        record.attributes = {
            escape_surrogates(k): escape_surrogates(v) for k, v in attributes.items()
        }
        escaped.append("attributes")
    if escaped:
        record.escaped_fields = tuple(escaped)


def _ratelimit(exchange: Exchange) -> RateLimitRecord | None:
    mark = exchange.ratelimit
    if mark is None:
        return None
    return RateLimitRecord(mark.model, mark.selector, mark.limited, mark.limit, mark.remaining)


# Step attributes the metrics read: low-cardinality, kept for unsampled requests too.
_METRIC_ATTRIBUTES = ("orchestrator.selection", ATTR_DIRECTION, ATTR_DECISION, ATTR_MODE)


def _for_metrics(attributes: Mapping[str, object]) -> dict:
    return {key: attributes[key] for key in _METRIC_ATTRIBUTES if key in attributes}


def _routing(exchange: Exchange) -> RoutingRecord | None:
    decision = exchange.routing
    if decision is None or exchange.routing_started is None:
        return None
    finished = exchange.routing_finished or exchange.routing_started
    return RoutingRecord(
        span_id=new_span_id(),
        start_ns=exchange.epoch_ns(exchange.routing_started),
        end_ns=exchange.epoch_ns(finished),
        route=decision.route,
        models=list(decision.models),
        backend=decision.backend,
        latency_ms=decision.latency_ms,
        fallback=decision.fallback,
        cached=decision.cached,
        pinned=decision.pinned,
        escalated=decision.escalated,
        scores={name: round(score, 4) for name, score in decision.scores.items()},
    )


def _response_body(exchange: Exchange) -> bytes | None:
    if exchange.response_body is not None:
        return exchange.response_body
    if exchange.response_chunks:
        return b"".join(exchange.response_chunks)
    return None
