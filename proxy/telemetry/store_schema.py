"""The trace store's schema, versioned: `meta.schema_version` and the migrations up to it.

MIGRATIONS[n] takes a database from version n to n + 1; a file without a `meta` table is
version 0. A new version appends a function here and never edits an old one: files written
by every released Plano must keep opening.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

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


MIGRATIONS: list[Migration] = [_v1]
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
