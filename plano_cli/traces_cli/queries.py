"""Reads TraceStore has no method for, made from its public pieces.

- every matching request, paged with `list_requests`' keyset cursor (stats on filters that
  `TraceStore.stats` does not take);
- trace ids by prefix, on a read-only connection of our own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from plano_cli.traces_cli.args import Filters
from proxy.telemetry.store import GroupStats, RequestRow, TraceStore
from proxy.telemetry.store_query import group_stats

PAGE = 5_000


class QueryError(Exception):
    pass


def matching_requests(
    store: TraceStore, filters: Filters, page: int = PAGE
) -> Iterator[RequestRow]:
    before: tuple[float, str] | None = None
    while True:
        rows = store.list_requests(**filters.store_kwargs(), limit=page, before=before)
        yield from rows
        if len(rows) < page:
            return
        before = (rows[-1].started_at, rows[-1].trace_id)


def stats_by(rows: list[RequestRow], group_by: str) -> list[GroupStats]:
    """TraceStore.stats' arithmetic (the same function) over rows already read."""
    return group_stats(
        (
            getattr(r, group_by),
            r.status,
            r.latency_ms,
            r.ttft_ms,
            r.input_tokens,
            r.output_tokens,
            r.cost_usd,
        )
        for r in rows
    )


def trace_ids_with_prefix(path: Path, prefix: str, limit: int = 6) -> list[str]:
    """Ids starting with a lowercase hex prefix, in requests or spans (a trace whose summary
    is not written yet has only spans).

    Any reader may open the file (WAL: it never blocks the writer). Ids are lowercase hex,
    all below '~', so [prefix, prefix + '~') holds exactly the ids that start with it, and
    that range walks the primary key's index instead of scanning the table.
    """
    bounds = (prefix, prefix + "~")
    sql = (
        "SELECT trace_id FROM requests WHERE trace_id >= ? AND trace_id < ?"
        " UNION SELECT trace_id FROM spans WHERE trace_id >= ? AND trace_id < ?"
        " ORDER BY 1 LIMIT ?"
    )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise QueryError(f"cannot read {path}: {exc}") from None
    try:
        return [row[0] for row in conn.execute(sql, [*bounds, *bounds, limit])]
    except sqlite3.Error as exc:
        raise QueryError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()
