"""The JSON documents the commands print with --json: plain dicts, stable keys.

Times are kept as the store has them (epoch seconds, span nanoseconds) for arithmetic, with
an ISO-8601 UTC twin for reading.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from plano_cli.traces_cli.fmt import iso_utc
from plano_cli.traces_cli.trace_model import routing_decision, span_tree
from proxy.telemetry.store import GroupStats, RequestRow, TraceDetail

_MESSAGE_FIELDS = frozenset({"request_messages", "response_messages"})
_REQUEST_FIELDS = tuple(f.name for f in fields(RequestRow))


def request_json(row: RequestRow, *, messages: bool = False) -> dict[str, Any]:
    """Every summary field; the messages only when asked (a list never reads them)."""
    out: dict[str, Any] = {"trace_id": row.trace_id, "started_at": row.started_at}
    out["started_at_iso"] = iso_utc(row.started_at)
    for name in _REQUEST_FIELDS:
        if name not in out and (messages or name not in _MESSAGE_FIELDS):
            out[name] = getattr(row, name)
    return out


def list_json(rows: list[RequestRow], more: bool) -> dict[str, Any]:
    return {"requests": [request_json(r) for r in rows], "more": more}


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
    request = detail.request
    return {
        "trace_id": detail.trace_id,
        "request": None if request is None else request_json(request, messages=True),
        "routing": routing_decision(detail),
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
    """What adds up across groups; percentiles do not, so they are left to the groups."""
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
