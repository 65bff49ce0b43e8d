"""SQL for the trace store's list and stats queries, and the stats arithmetic.

User input only ever reaches SQL as a bound parameter; the column names interpolated
here come from the allow-lists below, never from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from proxy.percentiles import percentile
from proxy.telemetry.store_rows import GroupStats

FILTER_KEYS = ("api", "listener", "model", "provider", "route", "session", "status")
GROUP_KEYS = ("model", "route")


def request_filter(
    *,
    since: float | None = None,
    until: float | None = None,
    where: Mapping[str, str] | None = None,
    min_latency_ms: float | None = None,
    has_signals: bool | None = None,
    text: str | None = None,
) -> tuple[list[str], list[Any]]:
    """WHERE clauses (joined by AND) and their parameters, for the `requests` table."""
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("started_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("started_at < ?")
        params.append(until)
    for key, value in (where or {}).items():
        if key not in FILTER_KEYS:
            raise ValueError(f"cannot filter on {key!r}; allowed: {', '.join(FILTER_KEYS)}")
        clauses.append(f"{key} = ?")
        params.append(_status(value) if key == "status" else value)
    if min_latency_ms is not None:
        clauses.append("latency_ms >= ?")
        params.append(min_latency_ms)
    if has_signals is not None:
        signalled = (
            "(coalesce(signal_count, 0) > 0"
            " OR EXISTS (SELECT 1 FROM signals s WHERE s.trace_id = requests.trace_id))"
        )
        clauses.append(signalled if has_signals else f"NOT {signalled}")
    if text:
        # Messages are stored as JSON, where a quote or newline is escaped: search for the
        # text as it is encoded there, and for it as written in the plain-text error.
        encoded = _like_pattern(orjson.dumps(text).decode()[1:-1])
        clauses.append(
            "(request_messages LIKE ? ESCAPE '\\' OR response_messages LIKE ? ESCAPE '\\'"
            " OR error LIKE ? ESCAPE '\\')"
        )
        params.extend([encoded, encoded, _like_pattern(text)])
    return clauses, params


def where_sql(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


StatsRow = tuple[Any, ...]  # key, status, latency_ms, ttft_ms, input, output, cost


def group_stats(rows: Iterable[StatsRow]) -> list[GroupStats]:
    """Per-key totals; busiest group first.

    Percentiles interpolate linearly between the two nearest ranks (numpy's default, the
    same `percentile` `plano route --eval` reports); requests without a value are left out.
    """
    groups: dict[str | None, list[StatsRow]] = {}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    stats = [_one_group(key, members) for key, members in groups.items()]
    stats.sort(key=lambda s: (-s.count, s.key is None, s.key or ""))
    return stats


def _one_group(key: str | None, rows: list[StatsRow]) -> GroupStats:
    _, statuses, latencies, ttfts, inputs, outputs, costs = zip(*rows, strict=True)
    latencies = [v for v in latencies if v is not None]
    ttfts = [v for v in ttfts if v is not None]
    errors = sum(1 for status in statuses if status is not None and status >= 400)
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


def _status(value: str | int) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"status must be a number, not {value!r}") from None


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
