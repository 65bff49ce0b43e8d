"""The local trace store: one SQLite file of request summaries, spans and signals.

The span exporter writes batches from its own thread; `plano traces` reads the same file
from another process. Threading: a `TraceStore` owns one connection and must be used by
one thread at a time (it may be opened on one thread and then handed to another). Each
reader opens its own `TraceStore` on the file: in WAL mode readers never block the writer
nor see half a batch. Never call it from the event loop: every method touches the disk.

Secrets are scrubbed on the way in (store_scrub), so nothing read back can leak one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlite_utils import Database

from proxy.paths import plano_home
from proxy.telemetry.store_query import GROUP_KEYS, group_stats, request_filter, where_sql
from proxy.telemetry.store_rows import (
    GroupStats,
    RequestRow,
    SignalRow,
    SpanEventRow,
    SpanRow,
    StoreBatch,
    TraceDetail,
    TraceStoreError,
)
from proxy.telemetry.store_schema import migrate
from proxy.telemetry.store_scrub import scrub_json, scrub_text

__all__ = [
    "GroupStats",
    "RequestRow",
    "SignalRow",
    "SpanEventRow",
    "SpanRow",
    "StoreBatch",
    "TraceDetail",
    "TraceStore",
    "TraceStoreError",
]

BUSY_TIMEOUT_S = 5.0
CACHE_KIB = 32_000
DAY_S = 86_400
_REQUEST_FIELDS = tuple(f.name for f in fields(RequestRow))
_MESSAGE_FIELDS = ("request_messages", "response_messages")
# Generated hex ids: scrubbing them could only corrupt them.
_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_id", "id"})
_SUMMARY_COLUMNS = ", ".join(f for f in _REQUEST_FIELDS if f not in _MESSAGE_FIELDS)
_ALL_COLUMNS = ", ".join(_REQUEST_FIELDS)
_NEWEST_FIRST = " ORDER BY started_at DESC, trace_id DESC"


class TraceStore:
    def __init__(
        self, db: Database, path: Path, retention_days: float, max_requests: int, prune_every: int
    ):
        self._db = db
        self.path = path
        self.retention_days = retention_days
        self.max_requests = max_requests
        self.prune_every = prune_every
        self._written_since_prune = 0

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        retention_days: float = 7,
        max_requests: int = 100_000,
        prune_every: int = 1_000,
    ) -> TraceStore:
        """Open (creating or migrating) the store; default `$PLANO_HOME/traces.db`.

        Raises TraceStoreError when the file cannot be used, e.g. a newer Plano wrote it.
        """
        target = Path(path).expanduser() if path is not None else plano_home() / "traces.db"
        conn: sqlite3.Connection | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # timeout is SQLite's busy timeout: wait for another process's lock, not fail.
            conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            db = Database(conn, execute_plugins=False)
            db.enable_wal()
            # NORMAL in WAL mode: a power cut may lose the last batches, never corrupt.
            db.execute("PRAGMA synchronous=NORMAL")
            # Random trace and span ids touch pages all over their indexes; 2 MB (the
            # default) holds little of a 250 MB store. Not measured to matter yet.
            db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            migrate(db, str(target))
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise TraceStoreError(f"cannot open the trace store {target}: {exc}") from None
        except TraceStoreError:
            if conn is not None:
                conn.close()
            raise
        return cls(db, target, retention_days, max_requests, prune_every)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> None:
        """Store one batch in one transaction; a row sent again replaces the earlier one."""
        requests = [_request_record(r) for r in batch.requests]
        spans = [_record(s, json_fields=("attributes",)) for s in batch.spans]
        events = [_record(e, json_fields=("attributes",), drop=("id",)) for e in batch.events]
        signals = [_record(s, drop=("id",)) for s in batch.signals]
        with self._db.atomic():
            if requests:
                self._db["requests"].upsert_all(requests, pk="trace_id")
            if spans:
                self._db["spans"].upsert_all(spans, pk="span_id")
            if events:
                self._db["span_events"].upsert_all(
                    events, hash_id="id", hash_id_columns=("span_id", "name", "time_ns")
                )
            if signals:
                self._db["signals"].upsert_all(
                    signals,
                    hash_id="id",
                    hash_id_columns=("trace_id", "type", "message_index", "snippet"),
                )
        self._written_since_prune += len(requests)
        if self._written_since_prune >= self.prune_every:
            self.prune()

    def prune(self, now: float | None = None) -> int:
        """Drop requests older than the retention or beyond max_requests (oldest first),
        with their spans, events and signals. Returns how many requests went."""
        self._written_since_prune = 0
        cutoff = (time.time() if now is None else now) - self.retention_days * DAY_S
        db = self._db
        with db.atomic():
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (trace_id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM temp.doomed")
            doom = "INSERT OR IGNORE INTO temp.doomed "
            db.execute(f"{doom}SELECT trace_id FROM requests WHERE started_at < ?", [cutoff])
            db.execute(
                f"{doom}SELECT trace_id FROM requests{_NEWEST_FIRST} LIMIT -1 OFFSET ?",
                [self.max_requests],
            )
            # Spans whose summary never came (a crash mid-request) would otherwise stay; the
            # start_ns index keeps this to the few spans past the cutoff, not a full scan.
            db.execute(
                f"{doom}SELECT DISTINCT trace_id FROM spans WHERE start_ns < ?"
                " AND trace_id NOT IN (SELECT trace_id FROM requests)",
                [int(cutoff * 1e9)],
            )
            in_doomed = "trace_id IN (SELECT trace_id FROM temp.doomed)"
            for table in ("span_events", "spans", "signals"):
                db.execute(f"DELETE FROM {table} WHERE {in_doomed}")
            return db.execute(f"DELETE FROM requests WHERE {in_doomed}").rowcount

    # -- reads ---------------------------------------------------------------------------

    def list_requests(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        where: Mapping[str, str] | None = None,
        min_latency_ms: float | None = None,
        has_signals: bool | None = None,
        text: str | None = None,
        limit: int = 100,
        before: tuple[float, str] | None = None,
        with_messages: bool = False,
    ) -> list[RequestRow]:
        """Newest first. For the next page pass the last row's (started_at, trace_id) as
        `before`: a keyset cursor, so a page costs the same however deep it is. Messages
        are left out (None) unless `with_messages`: a list view does not show them."""
        clauses, params = request_filter(
            since=since,
            until=until,
            where=where,
            min_latency_ms=min_latency_ms,
            has_signals=has_signals,
            text=text,
        )
        if before is not None:
            clauses.append("(started_at, trace_id) < (?, ?)")
            params.extend(before)
        columns = _ALL_COLUMNS if with_messages else _SUMMARY_COLUMNS
        sql = f"SELECT {columns} FROM requests{where_sql(clauses)}{_NEWEST_FIRST} LIMIT ?"
        return [_request_row(r) for r in self._db.query(sql, [*params, limit])]

    def newest_after(self, started_at: float, trace_id: str, limit: int = 100) -> list[RequestRow]:
        """Requests after the cursor, oldest first, for tailing: pass the last row back.

        The cursor is the start time, and a summary is written when its request ends: a
        request that started before the cursor but ended after it is not returned.
        """
        sql = (
            f"SELECT {_SUMMARY_COLUMNS} FROM requests WHERE (started_at, trace_id) > (?, ?)"
            " ORDER BY started_at, trace_id LIMIT ?"
        )
        return [_request_row(r) for r in self._db.query(sql, [started_at, trace_id, limit])]

    def get_trace(self, trace_id: str) -> TraceDetail | None:
        db = self._db
        sql = f"SELECT {_ALL_COLUMNS} FROM requests WHERE trace_id = ?"
        found = list(db.query(sql, [trace_id]))
        spans = [
            _span_row(r)
            for r in db.query(
                "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", [trace_id]
            )
        ]
        if not found and not spans:
            return None
        events = [
            _event_row(r)
            for r in db.query(
                "SELECT * FROM span_events WHERE trace_id = ? ORDER BY time_ns, id", [trace_id]
            )
        ]
        signals = [
            SignalRow(**r)
            for r in db.query(
                "SELECT * FROM signals WHERE trace_id = ? ORDER BY message_index, type, id",
                [trace_id],
            )
        ]
        request = _request_row(found[0]) if found else None
        return TraceDetail(trace_id, request, spans, events, signals)

    def stats(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        where: Mapping[str, str] | None = None,
        group_by: Literal["model", "route"] = "model",
    ) -> list[GroupStats]:
        if group_by not in GROUP_KEYS:
            raise ValueError(f"cannot group by {group_by!r}; allowed: {', '.join(GROUP_KEYS)}")
        clauses, params = request_filter(since=since, until=until, where=where)
        sql = (
            f"SELECT {group_by} AS key, status, latency_ms, ttft_ms, input_tokens,"
            f" output_tokens, cost_usd FROM requests{where_sql(clauses)}"
        )
        # Plain tuples, not sqlite-utils' dicts: this reads every matching row.
        return group_stats(self._db.execute(sql, params))

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM requests").fetchone()[0]


def _request_record(row: RequestRow) -> dict[str, Any]:
    record = _record(row, json_fields=_MESSAGE_FIELDS)
    record["stream"] = int(bool(row.stream))
    return record


def _record(
    row: Any, json_fields: tuple[str, ...] = (), drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A row as a dict ready to store, every free-text and JSON field scrubbed."""
    record: dict[str, Any] = {}
    for name in _field_names(type(row)):
        if name in drop:
            continue
        value = getattr(row, name)
        if name in json_fields:
            value = scrub_json(value)
        elif isinstance(value, str) and name not in _ID_FIELDS:
            value = scrub_text(value)
        record[name] = value
    return record


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _request_row(record: dict[str, Any]) -> RequestRow:
    record["stream"] = bool(record["stream"])
    for name in _MESSAGE_FIELDS:
        if record.get(name) is not None:
            record[name] = orjson.loads(record[name])
    return RequestRow(**record)


def _span_row(record: dict[str, Any]) -> SpanRow:
    record["attributes"] = _attributes(record["attributes"])
    return SpanRow(**record)


def _event_row(record: dict[str, Any]) -> SpanEventRow:
    record["attributes"] = _attributes(record["attributes"])
    return SpanEventRow(**record)


def _attributes(raw: str | None) -> dict[str, Any]:
    return orjson.loads(raw) if raw else {}
