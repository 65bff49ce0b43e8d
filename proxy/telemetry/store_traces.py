"""Traces from their calls: a trace's calls added up, and each call's trace start.

A trace holds every call made under one trace id (an agent's run: many LLM calls). The
store keeps each call (the `requests` table, keyed by the call's own root span) and adds
a trace up when it is read: a list page reads the calls of its own traces only, found by
the primary key, so a page costs the same however large the store. A table of sums kept
on every write was measured first: it cost the writer about a third more CPU per request
(bench/trace_store.py), on the idle-priority thread that every request pays for.

What the writer does keep is each call's `trace_started_at`, its trace's first start: the
list pages traces in that order, and a filter on a call field (`model=`, `status=`...)
walks the calls' indexes in that same order, so a filtered page reads no more than when a
trace was one call. A call that started before the trace's other calls but is written
after them moves their trace_started_at back (rare: calls are written as they end).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from proxy.telemetry.store_rows import TraceRow

# SQLite's bound-parameter limit was 999 before 3.32: an IN list stays well under it.
CHUNK = 500

# Worst last. A failure the status cannot show (a stream cut after its 200, a shutdown)
# outranks one it does, so the trace's outcome says what its status hides.
OUTCOME_RANK = {"ok": 0, "error": 1, "client_disconnect": 2, "shutdown": 3, "stream_error": 4}
QUALITY_RANK = {"excellent": 0, "good": 1, "neutral": 2, "poor": 3, "severe": 4}

# What a summary is made from, in this order (see `summarize`).
CALL_COLUMNS = (
    "trace_id",
    "span_id",
    "started_at",
    "latency_ms",
    "ttft_ms",
    "status",
    "outcome",
    "error",
    "model",
    "requested_model",
    "provider",
    "route",
    "router_backend",
    "routing_fallback",
    "listener",
    "api",
    "path",
    "session",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "stream",
    "signal_quality",
    "signal_score",
    "signal_count",
)
_C = {name: i for i, name in enumerate(CALL_COLUMNS)}
_TRACE_ID, _SPAN_ID, _STARTED_AT = (_C[name] for name in ("trace_id", "span_id", "started_at"))


class CallLayout:
    """Where a call's fields sit in the requests writer's parameter tuples."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.trace, self.started, self.trace_started = (
            columns.index(name) for name in ("trace_id", "started_at", "trace_started_at")
        )


def first_starts(
    conn: sqlite3.Connection, params: list[tuple[Any, ...]], layout: CallLayout
) -> tuple[list[tuple[Any, ...]], int]:
    """The calls' parameters with `trace_started_at` set: the earliest start of the
    trace's calls, those stored and these; stored calls of a trace that now starts
    earlier are moved back with it. In the write transaction, before the calls go in.
    Also returns how many of the traces are new to the store."""
    first: dict[str, float] = {}
    for row in params:
        trace_id, start = row[layout.trace], row[layout.started]
        if trace_id not in first or start < first[trace_id]:
            first[trace_id] = start
    moved: list[tuple[float, str, float]] = []
    stored = 0
    for chunk in _chunks(list(first)):
        sql = (
            "SELECT trace_id, min(trace_started_at) FROM requests"
            f" WHERE trace_id IN ({_marks(chunk)}) GROUP BY trace_id"
        )
        for trace_id, start in conn.execute(sql, chunk):
            stored += 1
            if start <= first[trace_id]:
                first[trace_id] = start
            else:
                moved.append((first[trace_id], trace_id, first[trace_id]))
    if moved:
        conn.executemany(
            "UPDATE requests SET trace_started_at = ? WHERE trace_id = ? AND trace_started_at > ?",
            moved,
        )
    into = layout.trace_started
    placed = [(*row[:into], first[row[layout.trace]], *row[into + 1 :]) for row in params]
    return placed, len(first) - stored


def call_values(row: Any) -> tuple[Any, ...]:
    """A RequestRow's CALL_COLUMNS, for `summarize`."""
    return tuple(getattr(row, name) for name in CALL_COLUMNS)


def summaries(conn: sqlite3.Connection, trace_ids: Sequence[str]) -> dict[str, TraceRow]:
    """The traces (those with a call stored) added up from their calls and signals."""
    calls: dict[str, list[tuple[Any, ...]]] = {}
    signals: dict[str, int] = {}
    for chunk in _chunks(list(dict.fromkeys(trace_ids))):
        marks = _marks(chunk)
        sql = f"SELECT {', '.join(CALL_COLUMNS)} FROM requests WHERE trace_id IN ({marks})"
        for row in conn.execute(sql, chunk):
            calls.setdefault(row[0], []).append(row)
        signals.update(
            conn.execute(
                f"SELECT trace_id, count(*) FROM signals WHERE trace_id IN ({marks})"
                " GROUP BY trace_id",
                chunk,
            )
        )
    return {t: summarize(rows, signals.get(t, 0)) for t, rows in calls.items()}


def summarize(calls: Sequence[Sequence[Any]], stored_signals: int = 0) -> TraceRow:
    """One trace from its calls (rows of CALL_COLUMNS, any order) and the number of
    signals stored for it."""
    if len(calls) == 1:  # most traces; a list page makes a hundred of these
        return one_call(calls[0], stored_signals)
    return many_calls(calls, stored_signals)


def one_call(call: Sequence[Any], stored_signals: int = 0) -> TraceRow:
    """`many_calls` of a single call, without its lists (a seventh of the time)."""
    (
        trace_id, _, started, latency, ttft, status, outcome, error, model, requested_model,
        provider, route, router_backend, routing_fallback, listener, api, path, session,
        input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost, stream,
        signal_quality, signal_score, signal_count,
    ) = call  # fmt: skip
    return TraceRow(
        trace_id=trace_id,
        started_at=started,
        ended_at=started if latency is None else started + latency / 1000,
        latency_ms=latency,
        calls=1,
        ttft_ms=ttft,
        status=status,
        outcome=outcome,
        error=error,
        model=model,
        models=0 if model is None else 1,
        requested_model=requested_model,
        provider=provider,
        route=route,
        routes=0 if route is None else 1,
        router_backend=router_backend,
        routing_fallback=routing_fallback or None,
        listener=listener,
        api=api,
        path=path,
        session=session,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached_tokens,
        reasoning_tokens=reasoning_tokens,
        cost_usd=cost,
        stream=bool(stream),
        signal_quality=signal_quality,
        signal_score=signal_score,
        signal_count=_signal_count([signal_count], stored_signals),
    )


def many_calls(calls: Sequence[Sequence[Any]], stored_signals: int = 0) -> TraceRow:
    """`summarize` of any number of calls, the one definition (one_call agrees with it)."""
    calls = sorted(calls, key=lambda row: (row[_STARTED_AT], row[_SPAN_ID]))
    first = calls[0]

    def column(name: str) -> list[Any]:
        i = _C[name]
        return [row[i] for row in calls]

    started = first[_STARTED_AT]
    # Up to the end of the last call to end; a one-call trace's is the call's, exactly.
    # The min_latency_ms filter's SQL does the same arithmetic (store_query), so that what
    # it keeps is what the list shows.
    spans = [
        (s - started) * 1000 + lat
        for s, lat in zip(column("started_at"), column("latency_ms"), strict=True)
        if lat is not None
    ]
    latency = max(spans) if spans else None
    outcomes = [o for o in column("outcome") if o is not None]
    statuses = [s for s in column("status") if s is not None]
    models = _distinct(column("model"))
    routes = _distinct(column("route"))
    qualities = [q for q in column("signal_quality") if q is not None]
    scores = [s for s in column("signal_score") if s is not None]
    return TraceRow(
        trace_id=first[_TRACE_ID],
        started_at=started,
        ended_at=started + latency / 1000 if latency is not None else max(column("started_at")),
        latency_ms=latency,
        calls=len(calls),
        ttft_ms=first[_C["ttft_ms"]],
        status=max(statuses) if statuses else None,
        outcome=max(outcomes, key=lambda o: OUTCOME_RANK.get(o, 1)) if outcomes else None,
        error=next((e for e in column("error") if e is not None), None),
        model=_only(models),
        models=len(models),
        requested_model=_only(_distinct(column("requested_model"))),
        provider=_only(_distinct(column("provider"))),
        route=_only(routes),
        routes=len(routes),
        router_backend=_only(_distinct(column("router_backend"))),
        routing_fallback=next((f for f in column("routing_fallback") if f), None),
        listener=first[_C["listener"]],
        api=first[_C["api"]],
        path=first[_C["path"]],
        session=first[_C["session"]],
        input_tokens=_sum(column("input_tokens")),
        output_tokens=_sum(column("output_tokens")),
        cached_tokens=_sum(column("cached_tokens")),
        reasoning_tokens=_sum(column("reasoning_tokens")),
        cost_usd=_sum(column("cost_usd")),
        stream=any(column("stream")),
        signal_quality=(
            max(qualities, key=lambda q: QUALITY_RANK.get(q, 2)) if qualities else None
        ),
        signal_score=min(scores) if scores else None,
        signal_count=_signal_count(column("signal_count"), stored_signals),
    )


def _signal_count(reported: list[int | None], stored: int) -> int | None:
    """The signals stored for the trace, or the most a call reported if more (a store
    whose signal rows were not written); None when no call was analyzed."""
    known = [n for n in reported if n is not None]
    return max([stored, *known]) if known or stored else None


def _distinct(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v is not None))


def _only(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else None


def _sum(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _marks(chunk: Sequence[Any]) -> str:
    return ", ".join("?" * len(chunk))


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]
