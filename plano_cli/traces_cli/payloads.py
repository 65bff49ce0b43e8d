"""The JSON documents the commands print with --json: plain dicts, stable keys.

Times are kept as the store has them (epoch seconds, span nanoseconds) for arithmetic, with
an ISO-8601 UTC twin for reading.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from plano_cli.traces_cli.filter_model import call_filters, filter_steps
from plano_cli.traces_cli.fmt import iso_utc
from plano_cli.traces_cli.trace_model import routing_decision, span_tree, trace_calls
from proxy.telemetry.store import GroupStats, RequestRow, TraceDetail, TraceRow

_MESSAGE_FIELDS = frozenset({"request_messages", "response_messages"})
_REQUEST_FIELDS = tuple(f.name for f in fields(RequestRow))
_TRACE_FIELDS = tuple(f.name for f in fields(TraceRow))


def request_json(row: RequestRow, *, messages: bool = False) -> dict[str, Any]:
    """One call: every summary field; the messages only when asked (a tail never reads
    them)."""
    out = _timed(row.trace_id, row.started_at)
    for name in _REQUEST_FIELDS:
        if name not in out and (messages or name not in _MESSAGE_FIELDS):
            out[name] = getattr(row, name)
    return out


def trace_row_json(row: TraceRow) -> dict[str, Any]:
    """One trace, its calls added up: every field of the list's row."""
    out = _timed(row.trace_id, row.started_at)
    for name in _TRACE_FIELDS:
        out.setdefault(name, getattr(row, name))
    return out


def _timed(trace_id: str, started_at: float) -> dict[str, Any]:
    return {"trace_id": trace_id, "started_at": started_at, "started_at_iso": iso_utc(started_at)}


def list_json(rows: list[TraceRow], more: bool) -> dict[str, Any]:
    return {"traces": [trace_row_json(r) for r in rows], "more": more}


def trace_json(detail: TraceDetail) -> dict[str, Any]:
    spans = []
    for placed in span_tree(detail):
        span = placed.span
        spans.append(
            {
                "span_id": span.span_id,
                "parent_id": span.parent_id,
                "name": span.name,
                "kind": span.kind,
                "depth": placed.depth,
                "start_ns": span.start_ns,
                "end_ns": span.end_ns,
                "offset_ms": placed.offset_ms,
                "duration_ms": placed.duration_ms,
                "status_code": span.status_code,
                "status_message": span.status_message,
                "attributes": span.attributes,
                "events": [
                    {
                        "name": e.name,
                        "time_ns": e.time_ns,
                        "offset_ms": (e.time_ns - span.start_ns) / 1e6,
                        "attributes": e.attributes,
                    }
                    for e in placed.events
                ],
            }
        )
    summary = detail.summary
    calls = trace_calls(detail)
    return {
        "trace_id": detail.trace_id,
        "summary": None if summary is None else trace_row_json(summary),
        "calls": [
            {
                "number": call.number,
                **request_json(call.row, messages=True),
                "routing": routing_decision(call.spans, call.row),
                "filters": [step.as_json() for step in filter_steps(call.spans)],
            }
            for call in calls
        ],
        # Every call's filter calls in order, each with the call it filtered.
        "filters": [
            {"call": None if call is None else call.number, **step.as_json()}
            for call, steps in call_filters(detail, calls)
            for step in steps
        ],
        "spans": spans,
        "signals": [
            {k: v for k, v in asdict(s).items() if k not in ("trace_id", "id")}
            for s in detail.signals
        ],
    }


def stats_json(tables: dict[str, list[GroupStats]], total: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {f"by_{by}": [asdict(g) for g in groups] for by, groups in tables.items()}
    out["total"] = total
    return out


def stats_total(groups: list[GroupStats]) -> dict[str, Any]:
    """What adds up across groups (counts of calls); percentiles do not, so they are left
    to the groups."""
    count = sum(g.count for g in groups)
    errors = sum(g.errors for g in groups)
    return {
        "count": count,
        "errors": errors,
        "error_rate": errors / count if count else 0.0,
        "input_tokens": sum(g.input_tokens for g in groups),
        "output_tokens": sum(g.output_tokens for g in groups),
        "cost_usd": sum(g.cost_usd for g in groups),
    }
