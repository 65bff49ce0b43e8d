"""Filter blocks on a page of traces: which filter blocked a call of each, or would have
in observe mode, read from their plano(filter) spans (proxy.filters.verdict's
attributes). The list shows them next to the status the block gave the client."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from proxy.filters.verdict import ATTR_DECISION, ATTR_ID, ATTR_MODE, Decision, Mode
from proxy.telemetry.store_rows import SpanRow, TraceRow
from proxy.telemetry.store_schema import (
    FILTER_DECISION_SQL,
    FILTER_ID_SQL,
    FILTER_SPAN,
    attribute_sql,
)
from proxy.telemetry.store_traces import CHUNK

# One probe of the filter-call index per trace; the mode is read only for the blocks.
_BLOCKS = (
    f"SELECT trace_id, {FILTER_ID_SQL}, {attribute_sql(ATTR_MODE)}"
    f" FROM spans WHERE trace_id IN ({{marks}}) AND name = '{FILTER_SPAN}'"
    f" AND {FILTER_DECISION_SQL} = '{Decision.BLOCK}' ORDER BY start_ns, span_id"
)


def mark_blocks(conn: sqlite3.Connection, traces: Mapping[str, TraceRow]) -> None:
    """Set each trace's `blocked_by` and `would_block` from its stored filter spans."""
    ids = list(traces)
    for first in range(0, len(ids), CHUNK):
        chunk = ids[first : first + CHUNK]
        sql = _BLOCKS.format(marks=", ".join("?" * len(chunk)))
        for trace_id, filter_id, mode in conn.execute(sql, chunk):
            _add(traces[trace_id], filter_id, mode)


def mark_blocks_from_spans(row: TraceRow, spans: Iterable[SpanRow]) -> None:
    """`mark_blocks` of one trace whose spans are already read (its detail)."""
    for span in spans:
        attrs = span.attributes
        if span.name == FILTER_SPAN and attrs.get(ATTR_DECISION) == Decision.BLOCK:
            _add(row, attrs.get(ATTR_ID), attrs.get(ATTR_MODE))


def _add(row: TraceRow, filter_id: object, mode: object) -> None:
    names = row.would_block if mode == Mode.OBSERVE else row.blocked_by
    name = "?" if filter_id is None else str(filter_id)
    if name not in names:
        names.append(name)
