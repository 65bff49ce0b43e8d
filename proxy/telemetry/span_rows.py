"""The trace store's rows for finished requests: spans as the store keeps them, the
request's summary and its signals.

The store's span rows are made from the very spans the exporter sends, so a trace read
back from the local store and one seen in an OTLP backend show the same names, times and
attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from proxy.telemetry.analysis import RecordAnalysis
from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.store_rows import RequestRow, SignalRow, SpanEventRow, SpanRow, StoreBatch

__all__ = ["request_row", "rows_from_spans", "signal_rows", "store_batch"]


def rows_from_spans(spans: Sequence[ReadableSpan]) -> tuple[list[SpanRow], list[SpanEventRow]]:
    span_rows: list[SpanRow] = []
    event_rows: list[SpanEventRow] = []
    for span in spans:
        context = span.context
        if context is None:  # a ReadableSpan may lack one; it cannot be stored without ids
            continue
        span_id, trace_id = _span_hex(context.span_id), _trace_hex(context.trace_id)
        parent = span.parent
        span_rows.append(
            SpanRow(
                span_id=span_id,
                trace_id=trace_id,
                name=span.name,
                start_ns=span.start_time or 0,
                end_ns=span.end_time,
                parent_id=_span_hex(parent.span_id) if parent is not None else None,
                kind=span.kind.name.lower(),
                status_code=span.status.status_code.name.lower(),
                status_message=span.status.description,
                attributes=_plain(span.attributes),
            )
        )
        event_rows.extend(
            SpanEventRow(
                span_id=span_id,
                trace_id=trace_id,
                name=event.name,
                time_ns=event.timestamp,
                attributes=_plain(event.attributes),
            )
            for event in span.events
        )
    return span_rows, event_rows


def request_row(record: TelemetryRecord, analysis: RecordAnalysis) -> RequestRow:
    routing = record.routing
    report = analysis.report
    return RequestRow(
        trace_id=record.trace_id,
        started_at=record.start_ns / 1e9,
        span_id=record.span_id,  # the call's plano(inbound): calls of one trace stay apart
        request_id=record.request_id,
        listener=record.listener,
        api=record.api,
        path=record.path,
        route=routing.route if routing is not None else None,
        router_backend=routing.backend if routing is not None else None,
        routing_fallback=routing.fallback if routing is not None else None,
        requested_model=record.requested_model,
        model=record.model,
        provider=record.provider,
        status=record.status or None,  # 0: the client never got a status
        outcome=record.outcome,
        error=record.error,
        latency_ms=record.latency_ms,
        ttft_ms=record.ttft_ms,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cached_tokens=record.cached_input_tokens,
        reasoning_tokens=record.reasoning_tokens,
        cost_usd=analysis.cost_usd,
        stream=record.stream,
        signal_quality=report.quality if report is not None else None,
        signal_score=report.score if report is not None else None,
        signal_count=len(report.signals) if report is not None else None,
        session=record.session,
        # The analysis leaves these None when message capture is off.
        request_messages=analysis.request_messages,
        response_messages=analysis.response_messages,
    )


def signal_rows(record: TelemetryRecord, analysis: RecordAnalysis) -> list[SignalRow]:
    if analysis.report is None:
        return []
    return [
        SignalRow(
            trace_id=record.trace_id,
            type=signal.type,
            group=signal.group,
            message_index=signal.message_index,
            confidence=signal.confidence,
            # A snippet quotes a message: kept only when messages are.
            snippet=signal.snippet if analysis.capture else None,
        )
        for signal in analysis.report.signals
    ]


def store_batch(
    items: Iterable[tuple[TelemetryRecord, RecordAnalysis, Sequence[ReadableSpan]]],
) -> StoreBatch:
    """One batch for `TraceStore.write` from finished requests and their spans."""
    batch = StoreBatch()
    for record, analysis, spans in items:
        spans_, events = rows_from_spans(spans)
        batch.requests.append(request_row(record, analysis))
        batch.spans.extend(spans_)
        batch.events.extend(events)
        batch.signals.extend(signal_rows(record, analysis))
    return batch


def _trace_hex(trace_id: int) -> str:
    return f"{trace_id:032x}"


def _span_hex(span_id: int) -> str:
    return f"{span_id:016x}"


def _plain(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Span attributes as JSON-able values: OpenTelemetry keeps sequences as tuples."""
    if not attributes:
        return {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}
