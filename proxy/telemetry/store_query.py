"""SQL for the trace store's list and stats queries, and the stats arithmetic.

The list's unit is a trace (its calls added up: store_traces); stats count calls. Both
read the `requests` table, one row a call. A filter term is about a call or about the
whole trace: see TraceFilter.

User input only ever reaches SQL as a bound parameter; the column names interpolated
here come from the allow-lists below, never from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.percentiles import percentile
from proxy.telemetry.store_rows import GroupStats
from proxy.telemetry.store_schema import FILTER_DECISION_SQL, FILTER_ID_SQL, FILTER_SPAN

# Fields of a call. A trace matches when one of its calls matches all the terms given
# together: `model=X status=502` is a trace with a call to X that got a 502.
FILTER_KEYS = (
    "api",
    "listener",
    "model",
    "outcome",
    "provider",
    "route",
    "session",
    "status",
    "agent",
    "filter",
    "decision",
)
# An agent listener's call that ran this agent: one of its plano(agent) spans names it.
_RAN_AGENT = (
    "EXISTS (SELECT 1 FROM spans a WHERE a.trace_id = c.trace_id AND a.parent_id = c.span_id"
    " AND a.name = 'plano(agent)' AND json_extract(a.attributes, '$.\"agent.id\"') = ?)"
)
# A call with a plano(filter) span matching `filter=` and `decision=` both, the same span:
# `filter=pii decision=block` is a call that pii blocked (or would have, in observe mode:
# the decision is the filter's own, the mode says whether it was applied). One probe of
# the partial index store_schema made for it (the same expressions, word for word).
FILTER_KEYS_OF_SPAN = {"filter": FILTER_ID_SQL, "decision": FILTER_DECISION_SQL}
DECISIONS = ("pass", "modify", "block", "error")
OUTCOMES = ("ok", "error", "stream_error", "client_disconnect", "shutdown")
GROUP_KEYS = ("model", "route")
# Traces newest first, by their first call's start: every call carries it.
_TRACE_ORDER = " ORDER BY c.trace_started_at DESC, c.trace_id DESC"
# Terms on a whole trace, each in two forms. Over a group of all the trace's calls (a walk
# with no call term) they are aggregates, reading each call once as the walk does; where
# call terms leave only some calls in the group (and in stats, which reads calls), they
# look the trace up from any call `c` of it. The latency is store_traces.summarize's: up to
# the end of the last call to end, in ms, with the same arithmetic.
_CALL_SPAN = "(({0}.started_at - c.trace_started_at) * 1000 + {0}.latency_ms)"
_GROUP_LATENCY = f"max({_CALL_SPAN.format('c')})"
_TRACE_LATENCY = (
    f"(SELECT max({_CALL_SPAN.format('l')}) FROM requests l WHERE l.trace_id = c.trace_id)"
)
_STORED_SIGNALS = "EXISTS (SELECT 1 FROM signals s WHERE s.trace_id = c.trace_id)"
_GROUP_SIGNALLED = f"(max(coalesce(c.signal_count, 0)) > 0 OR {_STORED_SIGNALS})"
_TRACE_SIGNALLED = (
    "(EXISTS (SELECT 1 FROM requests g WHERE g.trace_id = c.trace_id AND g.signal_count > 0)"
    f" OR {_STORED_SIGNALS})"
)


@dataclass(slots=True)
class TraceFilter:
    """A filter split by what it is about. `calls`: terms on one call, a trace matching
    when one of its calls matches them all. `grouped` / `traces`: terms on the whole
    trace, as aggregates over all its calls / for any call `c` of it (the same terms).
    `bounds`: the trace's start, which every call carries."""

    calls: list[str] = field(default_factory=list)
    call_params: list[Any] = field(default_factory=list)
    grouped: list[str] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    trace_params: list[Any] = field(default_factory=list)
    bounds: list[str] = field(default_factory=list)
    bound_params: list[Any] = field(default_factory=list)


def trace_filter(
    *,
    since: float | None = None,
    until: float | None = None,
    where: Mapping[str, str] | None = None,
    min_latency_ms: float | None = None,
    has_signals: bool | None = None,
    text: str | None = None,
) -> TraceFilter:
    """The filter's SQL (on alias c, a call); ValueError for what the store does not take."""
    f = TraceFilter()
    if since is not None:
        f.bounds.append("c.trace_started_at >= ?")
        f.bound_params.append(since)
    if until is not None:
        f.bounds.append("c.trace_started_at < ?")
        f.bound_params.append(until)
    filter_span: dict[str, str] = {}
    for key, value in (where or {}).items():
        if key not in FILTER_KEYS:
            raise ValueError(f"cannot filter on {key!r}; allowed: {', '.join(FILTER_KEYS)}")
        if key in FILTER_KEYS_OF_SPAN:
            filter_span[key] = _value(key, value)
            continue
        f.calls.append(_RAN_AGENT if key == "agent" else f"c.{key} = ?")
        f.call_params.append(_value(key, value))
    if filter_span:
        terms = [f"{FILTER_KEYS_OF_SPAN[key]} = ?" for key in filter_span]
        f.calls.append(
            "EXISTS (SELECT 1 FROM spans WHERE spans.trace_id = c.trace_id"
            f" AND spans.parent_id = c.span_id AND spans.name = '{FILTER_SPAN}'"
            f" AND {' AND '.join(terms)})"
        )
        f.call_params.extend(filter_span.values())
    if text:
        # Messages are stored as JSON, where a quote or newline is escaped: search for the
        # text as it is encoded there, and for it as written in the plain-text error.
        encoded = _like_pattern(orjson.dumps(text).decode()[1:-1])
        f.calls.append(
            "(c.request_messages LIKE ? ESCAPE '\\' OR c.response_messages LIKE ? ESCAPE '\\'"
            " OR c.error LIKE ? ESCAPE '\\')"
        )
        f.call_params.extend([encoded, encoded, _like_pattern(text)])
    if min_latency_ms is not None:
        f.grouped.append(f"{_GROUP_LATENCY} >= ?")
        f.traces.append(f"{_TRACE_LATENCY} >= ?")
        f.trace_params.append(min_latency_ms)
    if has_signals is not None:
        negate = "" if has_signals else "NOT "
        f.grouped.append(negate + _GROUP_SIGNALLED)
        f.traces.append(negate + _TRACE_SIGNALLED)
    return f


def trace_keys_sql(
    f: TraceFilter,
    *,
    before: tuple[float, str] | None,
    limit: int,
    trace_ids: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    """The (started_at, trace_id) of the matching traces, newest first; `before` is the
    keyset cursor, `trace_ids` a few traces to keep to.

    It walks the matching calls down one index (the one for a call term, or the trace
    order's), already in trace order, and keeps each trace once: a page reads no more
    calls than it shows, and the trace terms are tested once a trace (HAVING).
    """
    clauses = [*f.calls, *f.bounds]
    params = [*f.call_params, *f.bound_params]
    if before is not None:
        clauses.append("(c.trace_started_at, c.trace_id) < (?, ?)")
        params.extend(before)
    if trace_ids is not None:
        clauses.append(f"c.trace_id IN ({_marks(trace_ids)})")
        params.extend(trace_ids)
    trace_terms = f.traces if f.calls else f.grouped
    having = f" HAVING {' AND '.join(trace_terms)}" if trace_terms else ""
    sql = (
        f"SELECT c.trace_started_at, c.trace_id FROM requests c{where_sql(clauses)}"
        f" GROUP BY c.trace_started_at, c.trace_id{having}{_TRACE_ORDER} LIMIT ?"
    )
    return sql, [*params, *f.trace_params, limit]


def stats_sql(f: TraceFilter, group_by: str) -> tuple[str, list[Any]]:
    """Every call matching the call terms, in a trace matching the trace terms."""
    if group_by not in GROUP_KEYS:
        raise ValueError(f"cannot group by {group_by!r}; allowed: {', '.join(GROUP_KEYS)}")
    clauses = [*f.calls, *f.bounds, *f.traces]
    params = [*f.call_params, *f.bound_params, *f.trace_params]
    sql = (
        f"SELECT c.{group_by} AS key, c.status, c.outcome, c.latency_ms, c.ttft_ms,"
        f" c.input_tokens, c.output_tokens, c.cost_usd FROM requests c{where_sql(clauses)}"
    )
    return sql, params


def where_sql(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


StatsRow = tuple[Any, ...]  # key, status, outcome, latency_ms, ttft_ms, input, output, cost


def group_stats(rows: Iterable[StatsRow]) -> list[GroupStats]:
    """Per-key totals over calls; busiest group first.

    Percentiles interpolate linearly between the two nearest ranks (numpy's default, the
    same `percentile` `plano route --eval` reports), over each call's own latency and
    TTFT; calls without a value are left out.
    """
    groups: dict[str | None, list[StatsRow]] = {}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    stats = [_one_group(key, members) for key, members in groups.items()]
    stats.sort(key=lambda s: (-s.count, s.key is None, s.key or ""))
    return stats


def _one_group(key: str | None, rows: list[StatsRow]) -> GroupStats:
    _, statuses, outcomes, latencies, ttfts, inputs, outputs, costs = zip(*rows, strict=True)
    latencies = [v for v in latencies if v is not None]
    ttfts = [v for v in ttfts if v is not None]
    errors = sum(map(failed, statuses, outcomes))
    return GroupStats(
        key=key,
        count=len(rows),
        errors=errors,
        error_rate=errors / len(rows),
        p50_latency_ms=percentile(latencies, 50) if latencies else None,
        p95_latency_ms=percentile(latencies, 95) if latencies else None,
        p50_ttft_ms=percentile(ttfts, 50) if ttfts else None,
        p95_ttft_ms=percentile(ttfts, 95) if ttfts else None,
        input_tokens=sum(v for v in inputs if v is not None),
        output_tokens=sum(v for v in outputs if v is not None),
        cost_usd=sum(v for v in costs if v is not None),
    )


def failed(status: int | None, outcome: str | None) -> bool:
    """A call that did not end well: its outcome says so, or (a row stored without one)
    its status is an error."""
    if outcome is not None:
        return outcome != "ok"
    return status is not None and status >= 400


def _value(key: str, value: str) -> Any:
    if key == "status":
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"status must be a number, not {value!r}") from None
    if key == "outcome" and value not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {value!r}")
    if key == "decision" and value not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {value!r}")
    return value


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
