"""The trace store's schema, versioned: `meta.schema_version` and the migrations up to it.

MIGRATIONS[n] takes a database from version n to n + 1; a file without a `meta` table is
version 0. A new version appends a function here and never edits an old one: files written
by every released Plano must keep opening.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy.filters.verdict import ATTR_DECISION, ATTR_ID
from proxy.telemetry.store_rows import TraceStoreError

if TYPE_CHECKING:  # readers never load sqlite-utils (and the numpy it imports)
    from sqlite_utils import Database

Migration = Callable[["Database"], None]


def _v1(db: Database) -> None:
    db["requests"].create(
        {
            "trace_id": str,
            "request_id": str,
            "started_at": float,
            "listener": str,
            "api": str,
            "path": str,
            "route": str,
            "router_backend": str,
            "routing_fallback": str,
            "requested_model": str,
            "model": str,
            "provider": str,
            "status": int,
            "error": str,
            "latency_ms": float,
            "ttft_ms": float,
            "input_tokens": int,
            "output_tokens": int,
            "cached_tokens": int,
            "reasoning_tokens": int,
            "cost_usd": float,
            "stream": int,
            "signal_quality": str,
            "signal_score": int,
            "signal_count": int,
            "session": str,
            "request_messages": str,
            "response_messages": str,
        },
        pk="trace_id",
        not_null=["started_at"],
    )
    db["spans"].create(
        {
            "span_id": str,
            "trace_id": str,
            "parent_id": str,
            "name": str,
            "kind": str,
            "start_ns": int,
            "end_ns": int,
            "status_code": str,
            "status_message": str,
            "attributes": str,
        },
        pk="span_id",
        not_null=["trace_id"],
    )
    db["span_events"].create(
        {
            "id": str,
            "span_id": str,
            "trace_id": str,
            "name": str,
            "time_ns": int,
            "attributes": str,
        },
        pk="id",
        not_null=["trace_id"],
    )
    db["signals"].create(
        {
            "id": str,
            "trace_id": str,
            "type": str,
            "group": str,
            "message_index": int,
            "confidence": float,
            "snippet": str,
        },
        pk="id",
        not_null=["trace_id"],
    )
    # trace_id closes each list index: pages are ordered by (started_at, trace_id), and
    # with it in the index no page needs a sort.
    requests = db["requests"]
    requests.create_index(["started_at", "trace_id"])
    for column in ("model", "route", "status"):
        requests.create_index([column, "started_at", "trace_id"])
    for table in ("spans", "span_events", "signals"):
        db[table].create_index(["trace_id"])
    # For pruning spans that never got a summary; start times only grow, so it is cheap.
    db["spans"].create_index(["start_ns"])


# v2's `requests`: one row per call, keyed within its trace by the call's own root span.
# The messages last: reading a summary then never touches their overflow pages.
_REQUESTS_V2 = """
CREATE TABLE requests (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    trace_started_at REAL NOT NULL,
    started_at REAL NOT NULL,
    request_id TEXT,
    listener TEXT,
    api TEXT,
    path TEXT,
    route TEXT,
    router_backend TEXT,
    routing_fallback TEXT,
    requested_model TEXT,
    model TEXT,
    provider TEXT,
    status INTEGER,
    outcome TEXT,
    error TEXT,
    latency_ms REAL,
    ttft_ms REAL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cached_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost_usd REAL,
    stream INTEGER,
    signal_quality TEXT,
    signal_score INTEGER,
    signal_count INTEGER,
    session TEXT,
    request_messages TEXT,
    response_messages TEXT,
    PRIMARY KEY (trace_id, span_id)
)
"""
# v1 kept one row per trace (the last call written): each becomes a call. Its key is the
# trace's plano(inbound) span that started nearest to it (SQLite takes a bare column from
# the row of the one min()), or the trace id when none is stored (no span id is 32
# characters long, so it cannot collide).
_CALL_KEYS_V1 = """
CREATE TEMP TABLE call_keys AS
SELECT r.trace_id AS trace_id, s.span_id AS span_id, min(abs(s.start_ns - r.started_at * 1e9))
FROM requests_v1 r JOIN spans s ON s.trace_id = r.trace_id AND s.name = 'plano(inbound)'
GROUP BY r.trace_id
"""
_COPY_V1 = """
INSERT INTO requests (
    trace_id, span_id, trace_started_at, started_at, request_id, listener, api, path, route,
    router_backend, routing_fallback, requested_model, model, provider, status, outcome,
    error, latency_ms, ttft_ms, input_tokens, output_tokens, cached_tokens,
    reasoning_tokens, cost_usd, stream, signal_quality, signal_score, signal_count, session,
    request_messages, response_messages
)
SELECT
    r.trace_id, coalesce(k.span_id, r.trace_id),
    r.started_at, r.started_at, r.request_id, r.listener, r.api, r.path, r.route,
    r.router_backend, r.routing_fallback, r.requested_model, r.model, r.provider, r.status,
    -- Exchange.outcome's rule, from what v1 kept: a 2xx with an error is a failed stream.
    CASE
        WHEN r.status = 499 THEN 'client_disconnect'
        WHEN r.status IS NULL OR r.status < 200 OR r.status >= 400 THEN 'error'
        WHEN r.error IS NOT NULL THEN 'stream_error'
        ELSE 'ok'
    END,
    r.error, r.latency_ms, r.ttft_ms, r.input_tokens, r.output_tokens, r.cached_tokens,
    r.reasoning_tokens, r.cost_usd, r.stream, r.signal_quality, r.signal_score,
    r.signal_count, r.session, r.request_messages, r.response_messages
FROM requests_v1 r LEFT JOIN temp.call_keys k ON k.trace_id = r.trace_id
"""


def _v2(db: Database) -> None:
    """Every call kept: `requests` keyed by (trace_id, span_id), not by trace, each call
    with its outcome and its trace's first start. Rows of v1 are kept, one call a trace."""
    db.execute("ALTER TABLE requests RENAME TO requests_v1")
    db.execute(_REQUESTS_V2)
    db.execute(_CALL_KEYS_V1)
    db.execute(_COPY_V1)
    db.execute("DROP TABLE temp.call_keys")
    db.execute("DROP TABLE requests_v1")  # and its indexes, whose names v2 reuses
    # Pages of traces are ordered by their first start and id, which every call carries
    # (trace_started_at, trace_id); each index on a call field ends with them, so a
    # filtered page walks one index in order and needs no sort. (started_at, span_id) is
    # the tail's cursor: each call's own start.
    requests = db["requests"]
    requests.create_index(["trace_started_at", "trace_id"])
    for column in ("model", "route", "status", "outcome"):
        requests.create_index([column, "trace_started_at", "trace_id"])
    requests.create_index(["started_at", "span_id"])


# Filter calls (proxy.filters.verdict's span attributes): what `--where filter=… decision=…`
# looks for under each call. store_query repeats these expressions word for word, which is
# what lets SQLite use the index below for them.
FILTER_SPAN = "plano(filter)"


def attribute_sql(key: str) -> str:
    """A span attribute's value in SQL (keys hold dots: quoted in the JSON path)."""
    return f"json_extract(attributes, '$.\"{key}\"')"


FILTER_ID_SQL = attribute_sql(ATTR_ID)
FILTER_DECISION_SQL = attribute_sql(ATTR_DECISION)


def _v3(db: Database) -> None:
    """An index of filter calls: each plano(filter) span under its call, by filter id and
    decision. Partial, so spans of any other kind cost it nothing; a list filtered on a
    filter walks the calls in trace order (as for every call term) and probes it once a
    call, never reading a span's JSON."""
    db.execute(
        "CREATE INDEX idx_spans_filter_calls ON spans"
        f" (trace_id, parent_id, {FILTER_ID_SQL}, {FILTER_DECISION_SQL})"
        f" WHERE name = '{FILTER_SPAN}'"
    )


MIGRATIONS: list[Migration] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: Database) -> int:
    if not db["meta"].exists():
        return 0
    rows = list(db.query("SELECT value FROM meta WHERE key = 'schema_version'"))
    return int(rows[0]["value"]) if rows else 0


def migrate(db: Database, label: str) -> int:
    """Bring the file up to SCHEMA_VERSION; returns the version it had. `label` names it."""
    found = schema_version(db)
    _refuse_newer(found, label)
    if found == SCHEMA_VERSION:
        return found  # the common case takes no write lock: readers open freely
    # IMMEDIATE: two processes opening a fresh file at once must not both migrate it.
    db.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(db)  # the other one may have finished while we waited
        _refuse_newer(found, label)
        if not db["meta"].exists():
            db["meta"].create({"key": str, "value": str}, pk="key")
        for version in range(found, SCHEMA_VERSION):
            MIGRATIONS[version](db)
        db["meta"].upsert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key")
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
    return found


def check_readable(conn: sqlite3.Connection, label: str) -> None:
    """For a read-only open, which cannot migrate: the file must be at SCHEMA_VERSION."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table: not a trace store (or an empty file)
        row = None
    found = int(row[0]) if row else 0
    _refuse_newer(found, label)
    if found < SCHEMA_VERSION:
        raise TraceStoreError(
            f"{label} is not a trace store at schema {SCHEMA_VERSION} (found {found}); "
            "`plano up` creates or upgrades it"
        )


def _refuse_newer(found: int, label: str) -> None:
    if found > SCHEMA_VERSION:
        raise TraceStoreError(
            f"{label} was written by a newer Plano (schema {found}; this one reads up to "
            f"{SCHEMA_VERSION}); upgrade Plano or use --db elsewhere"
        )
