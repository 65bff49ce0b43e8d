"""The local trace store: one SQLite file of request summaries, spans and signals.

The span exporter writes batches from its own thread; `plano traces` reads the same file
from another process. Threading: a `TraceStore` owns one connection and must be used by
one thread at a time (it may be opened on one thread and then handed to another). Each
reader opens its own `TraceStore` on the file: in WAL mode readers never block the writer
nor see half a batch. Never call it from the event loop: every method touches the disk.

Secrets are scrubbed on the way in (store_scrub), so nothing read back can leak one.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from proxy.paths import default_trace_store
from proxy.telemetry import store_filters, store_traces
from proxy.telemetry.storable import escape_surrogates, fits_int64
from proxy.telemetry.store_query import group_stats, stats_sql, trace_filter, trace_keys_sql
from proxy.telemetry.store_rows import (
    GroupStats,
    RequestRow,
    SignalRow,
    SpanEventRow,
    SpanRow,
    StoreBatch,
    TraceDetail,
    TraceRow,
    TraceStoreError,
)
from proxy.telemetry.store_schema import check_readable, migrate
from proxy.telemetry.store_scrub import (
    scrub_json_column,
    scrub_json_fully,
    scrub_text,
    scrub_texts,
    scrub_value,
)

if TYPE_CHECKING:  # loaded by open() for writers only: readers skip sqlite-utils and numpy
    from sqlite_utils import Database

__all__ = [
    "GroupStats",
    "RequestRow",
    "SignalRow",
    "SpanEventRow",
    "SpanRow",
    "StoreBatch",
    "TraceDetail",
    "TraceRow",
    "TraceStore",
    "TraceStoreError",
]

BUSY_TIMEOUT_S = 5.0
CACHE_KIB = 32_000
WAL_AUTOCHECKPOINT_PAGES = 10_000
DAY_S = 86_400
RECOUNT_EVERY = 10  # prunes between two counts of the traces (see _trace_count)
_REQUEST_FIELDS = tuple(f.name for f in fields(RequestRow))
_MESSAGE_FIELDS = ("request_messages", "response_messages")
# Generated hex ids: scrubbing them could only corrupt them.
_ID_FIELDS = frozenset({"trace_id", "span_id", "parent_id", "id"})
_SUMMARY_COLUMNS = ", ".join(f for f in _REQUEST_FIELDS if f not in _MESSAGE_FIELDS)
_ALL_COLUMNS = ", ".join(_REQUEST_FIELDS)
_ORPHAN_SPANS = (
    "SELECT trace_id FROM spans WHERE start_ns < ?"
    " AND trace_id NOT IN (SELECT trace_id FROM requests)"
)
# sqlite3 (Python 3.11) "adapts" every parameter that is not an exact int, float or str.
# For None that means asking its protocol class for __adapt__, which raises and formats
# an AttributeError only to discard it: ~3k instructions per NULL, ~13 NULLs a request,
# ~7% of a write's CPU. An adapter registered for NoneType is found first, and dict.get
# is a C function that returns None for it: NULL is still bound. Process-wide, but it
# changes nothing any other sqlite3 user could see.
sqlite3.register_adapter(type(None), {}.get)


class TraceStore:
    def __init__(
        self,
        conn: sqlite3.Connection,
        db: Database | None,
        path: Path,
        retention_days: float,
        max_requests: int,
        prune_every: int,
    ):
        self._conn = conn
        self._db = db  # sqlite-utils, for writes and migrations; None when read-only
        self.path = path
        self.retention_days = retention_days
        self.max_requests = max_requests
        self.prune_every = prune_every
        self._written_since_prune = 0
        self._traces: int | None = None  # see _trace_count
        self._prunes = 0

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        retention_days: float = 7,
        max_requests: int = 100_000,
        prune_every: int = 1_000,
        read_only: bool = False,
    ) -> TraceStore:
        """Open (creating or migrating) the store; default `$PLANO_HOME/traces.db`.

        `read_only`: for readers (`plano traces`): the file must exist at the current
        schema, nothing is created or migrated, and sqlite-utils is not loaded (with the
        numpy it imports, a third of the viewer's start-up).

        Raises TraceStoreError when the file cannot be used, e.g. a newer Plano wrote it.
        """
        target = Path(path).expanduser() if path is not None else default_trace_store()
        if read_only:
            # mode=ro: never creates the file, never writes it; WAL lets it read while the
            # gateway writes.
            uri = f"{target.resolve().as_uri()}?mode=ro"
            conn, _ = _connect(
                target,
                lambda: sqlite3.connect(
                    uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False
                ),
                lambda conn: check_readable(conn, str(target)),
            )
            return cls(conn, None, target, 0, 0, 0)

        def create() -> sqlite3.Connection:
            target.parent.mkdir(parents=True, exist_ok=True)
            # timeout is SQLite's busy timeout: wait for another process's lock, not fail.
            return sqlite3.connect(target, timeout=BUSY_TIMEOUT_S, check_same_thread=False)

        def prepare(conn: sqlite3.Connection) -> Database:
            db = _writer_db(conn)
            migrate(db, str(target))
            return db

        conn, db = _connect(target, create, prepare)
        return cls(conn, db, target, retention_days, max_requests, prune_every)

    def close(self) -> None:
        self._conn.close()

    def recent_prompts(self, *, since: float, limit: int) -> list[tuple]:
        """(request_messages, route, router_backend, routing_fallback, started_at) of the
        newest `limit` requests since `since` that were stored with their messages, newest
        first: what `plano route --learn` learns from."""
        return self._conn.execute(
            "SELECT request_messages, route, router_backend, routing_fallback, started_at "
            "FROM requests WHERE request_messages IS NOT NULL AND started_at >= ? "
            "ORDER BY started_at DESC LIMIT ?",
            (since, limit),
        ).fetchall()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------

    def write(self, batch: StoreBatch) -> Counter[str]:
        """Store one batch in one transaction; a row sent again replaces the earlier one.
        Each call is stored with its trace's first start (store_traces.first_starts).

        A value that cannot be stored as it is (text that is not valid UTF-8, an int past
        64 bits, JSON nested too deep) is stored replaced (see proxy.telemetry.storable);
        returns how many values of each column were. Raises if the batch cannot be written
        at all (a full disk, a row without its key): nothing of it is then stored.
        """
        replaced: Counter[str] = Counter()
        # Rows are scrubbed and turned into parameters before the write lock is taken.
        work = [
            (writer, writer.params(rows, replaced))
            for writer, rows in (
                (_REQUESTS, batch.requests),
                (_SPANS, batch.spans),
                (_EVENTS, batch.events),
                (_SIGNALS, batch.signals),
            )
            if rows
        ]
        conn = self._conn
        new_traces = 0
        with self._transaction():
            for writer, params in work:
                if writer is _REQUESTS:
                    params, new_traces = store_traces.first_starts(conn, params, _CALL_LAYOUT)
                writer.execute(conn, params, replaced)
        if self._traces is not None:  # committed: the count pruning keeps (_trace_count)
            self._traces += new_traces
        self._written_since_prune += len(batch.requests)
        if self._written_since_prune >= self.prune_every:
            self.prune()
        return replaced

    def prune(self, now: float | None = None) -> int:
        """Drop traces that started before the retention, and the oldest beyond
        max_requests traces, whole: their calls, spans, events and signals. Returns how
        many calls went."""
        self._written_since_prune = 0
        cutoff = (time.time() if now is None else now) - self.retention_days * DAY_S
        db = self._writable()
        with self._transaction():
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (trace_id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM temp.doomed")
            doom = "INSERT OR IGNORE INTO temp.doomed "
            db.execute(f"{doom}SELECT trace_id FROM requests WHERE trace_started_at < ?", [cutoff])
            traces = self._trace_count()
            excess = traces - self.max_requests
            if excess > 0:
                # The oldest traces, each once: the index walk is in trace order.
                db.execute(
                    f"{doom}SELECT trace_id FROM requests GROUP BY trace_started_at, trace_id"
                    " ORDER BY trace_started_at, trace_id LIMIT ?",
                    [excess],
                )
            gone = db.execute("SELECT count(*) FROM temp.doomed").fetchone()[0]
            # Spans whose summary never came (a crash mid-request) would otherwise stay; the
            # start_ns index keeps this to the few spans past the cutoff, not a full scan.
            # No DISTINCT (doomed's key drops repeats): with it SQLite walked the trace_id
            # index over every span instead, 170 ms a prune at 100k requests.
            db.execute(f"{doom}{_ORPHAN_SPANS}", [int(cutoff * 1e9)])
            in_doomed = "trace_id IN (SELECT trace_id FROM temp.doomed)"
            for table in ("span_events", "spans", "signals"):
                db.execute(f"DELETE FROM {table} WHERE {in_doomed}")
            deleted = db.execute(f"DELETE FROM requests WHERE {in_doomed}").rowcount
        self._traces = traces - gone  # only once it is committed
        return deleted

    # -- reads ---------------------------------------------------------------------------

    def list_traces(
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
        trace_ids: Sequence[str] | None = None,
    ) -> list[TraceRow]:
        """Traces, newest first (by their first call's start), each its calls added up.

        `where` and `text` are about calls: a trace matches when one of its calls matches
        them all. `since`, `until`, `min_latency_ms` and `has_signals` are about the trace:
        its start, its wall-clock latency, any signal in it. For the next page pass the last
        row's (started_at, trace_id) as `before`: a keyset cursor, so a page costs the same
        however deep it is. `trace_ids` keeps only those traces (at most a few hundred).
        """
        f = trace_filter(
            since=since,
            until=until,
            where=where,
            min_latency_ms=min_latency_ms,
            has_signals=has_signals,
            text=text,
        )
        sql, params = trace_keys_sql(f, before=before, limit=limit, trace_ids=trace_ids)
        keys = self._conn.execute(sql, params).fetchall()
        found = store_traces.summaries(self._conn, [trace_id for _, trace_id in keys])
        store_filters.mark_blocks(self._conn, found)
        # A trace pruned between the two reads is left out.
        return [found[trace_id] for _, trace_id in keys if trace_id in found]

    def newest_after(self, started_at: float, span_id: str, limit: int = 100) -> list[RequestRow]:
        """Calls after the cursor, oldest first, for tailing: pass the last row back.

        The cursor is a call's own start, and a call is written when it ends: a call that
        started before the cursor but ended after it is not returned.
        """
        sql = (
            f"SELECT {_SUMMARY_COLUMNS} FROM requests WHERE (started_at, span_id) > (?, ?)"
            " ORDER BY started_at, span_id LIMIT ?"
        )
        return [_request_row(r) for r in self._query(sql, [started_at, span_id, limit])]

    def get_trace(self, trace_id: str) -> TraceDetail | None:
        """The trace with all its calls (and their messages), spans, events and signals."""
        calls = [
            _request_row(r)
            for r in self._query(
                f"SELECT {_ALL_COLUMNS} FROM requests WHERE trace_id = ?"
                " ORDER BY started_at, span_id",
                [trace_id],
            )
        ]
        spans = [
            _span_row(r)
            for r in self._query(
                "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id", [trace_id]
            )
        ]
        if not calls and not spans:
            return None
        events = [
            _event_row(r)
            for r in self._query(
                "SELECT * FROM span_events WHERE trace_id = ? ORDER BY time_ns, id", [trace_id]
            )
        ]
        signals = [
            SignalRow(**r)
            for r in self._query(
                "SELECT * FROM signals WHERE trace_id = ? ORDER BY message_index, type, id",
                [trace_id],
            )
        ]
        summary = None
        if calls:
            values = [store_traces.call_values(call) for call in calls]
            summary = store_traces.summarize(values, len(signals))
            store_filters.mark_blocks_from_spans(summary, spans)
        return TraceDetail(trace_id, summary, calls, spans, events, signals)

    def stats(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        where: Mapping[str, str] | None = None,
        min_latency_ms: float | None = None,
        has_signals: bool | None = None,
        text: str | None = None,
        group_by: Literal["model", "route"] = "model",
    ) -> list[GroupStats]:
        """Per model or route, over calls: those matching the call terms (`where`, `text`)
        in traces matching the trace terms (the rest), as `list_traces` reads them."""
        f = trace_filter(
            since=since,
            until=until,
            where=where,
            min_latency_ms=min_latency_ms,
            has_signals=has_signals,
            text=text,
        )
        sql, params = stats_sql(f, group_by)
        # Plain tuples, not sqlite-utils' dicts: this reads every matching row.
        return group_stats(self._conn.execute(sql, params))

    def count(self) -> int:
        """How many calls are stored."""
        return self._conn.execute("SELECT count(*) FROM requests").fetchone()[0]

    def count_traces(self) -> int:
        """How many traces are stored (that have a call): reads every call's index entry."""
        return self._conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT trace_id FROM requests)"
        ).fetchone()[0]

    def _trace_count(self) -> int:
        """The number of traces, for pruning: counted now and then (a count reads every
        call's index entry), kept up to date by this writer's writes and prunes in
        between. Another process writing the same file only delays a prune a little,
        until the next count."""
        self._prunes += 1
        if self._traces is None or self._prunes % RECOUNT_EVERY == 0:
            self._traces = self.count_traces()
        return self._traces

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts by column name (what sqlite-utils' query gives)."""
        cursor = self._conn.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction that takes the write lock before its first read (IMMEDIATE):
        a deferred one that reads first (the trace starts, the rows to prune) could not
        upgrade to writing once another connection had committed, and SQLite fails that
        at once ("database is locked") instead of waiting out the busy timeout."""
        self._writable()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def _writable(self) -> Database:
        if self._db is None:
            raise TraceStoreError(f"{self.path} was opened read-only")
        return self._db


def _connect(
    target: Path,
    connect: Callable[[], sqlite3.Connection],
    prepare: Callable[[sqlite3.Connection], _Prepared],
) -> tuple[sqlite3.Connection, _Prepared]:
    """A connection made and prepared (checked, or set up and migrated), or
    TraceStoreError; a connection that fails its preparation is closed."""
    conn: sqlite3.Connection | None = None
    try:
        conn = connect()
        return conn, prepare(conn)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error | OSError):
            raise TraceStoreError(f"cannot open the trace store {target}: {exc}") from None
        raise


def _writer_db(conn: sqlite3.Connection) -> Database:
    """sqlite-utils over the connection, set up for writing."""
    from sqlite_utils import Database

    db = Database(conn, execute_plugins=False)
    db.enable_wal()
    # NORMAL in WAL mode: a power cut may lose the last batches, never corrupt.
    db.execute("PRAGMA synchronous=NORMAL")
    # Random trace and span ids touch pages all over their indexes; 2 MB (the
    # default) holds little of a 250 MB store. Not measured to matter yet.
    db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    # A batch of 500 requests dirties ~4,000 pages (every random-id index takes a
    # page per row), so at SQLite's default of 1,000 every commit checkpointed.
    # Checkpointing every few batches copies a page rewritten by each only once:
    # -15-25% write time at 100k requests (bench/trace_store.py). The WAL file
    # grows to ~50 MB; a power cut may lose a few more batches, still not corrupt.
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    return db


class _Writer:
    """One table's upsert: a prepared statement built once from its row dataclass, and the
    conversion of rows into its parameters with every free-text and JSON field scrubbed.

    It does what sqlite-utils' upsert_all did (same values, same hash ids, the later row
    winning), without its per-value Python work, which cost ~3x the SQLite time it wrapped.
    """

    def __init__(
        self,
        table: str,
        cls: type,
        pk: str,
        json_fields: tuple[str, ...] = (),
        hash_id_columns: tuple[str, ...] = (),
        conflict: tuple[str, ...] = (),
    ) -> None:
        names = [f.name for f in fields(cls)]
        if hash_id_columns:
            names.remove(pk)  # derived from the other columns, appended after them
        self.table = table
        self.getters = [attrgetter(name) for name in names]
        self.texts = tuple(
            i for i, name in enumerate(names) if name not in _ID_FIELDS | set(json_fields)
        )
        self.jsons = tuple(names.index(name) for name in json_fields)
        self.stream = names.index("stream") if "stream" in names else None
        # hash_record hashes the columns as JSON with sorted keys.
        self.hash_columns = tuple(
            (name, f"{json.dumps(name)}:", names.index(name)) for name in sorted(hash_id_columns)
        )
        columns = [*names, pk] if hash_id_columns else names
        self.columns = tuple(columns)
        self.pk = pk
        self.pk_index = columns.index(pk)
        # The table's key: `pk` alone, or `conflict` (which holds pk) when it is composite.
        key = [_quote(c) for c in conflict or (pk,)]
        quoted = [_quote(c) for c in columns]
        updates = ", ".join(f"{q} = excluded.{q}" for q in quoted if q not in key)
        self.sql = (
            f"INSERT INTO {_quote(table)} ({', '.join(quoted)})"
            f" VALUES ({', '.join('?' * len(columns))})"
            f" ON CONFLICT({', '.join(key)}) DO UPDATE SET {updates}"
        )

    def params(
        self, rows: Sequence[Any], replaced: Counter[str] | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows' parameters for `sql`, scrubbed. Worked column by column, in C loops
        where possible: a Python loop over rows and fields costs more than SQLite does.
        JSON that cannot be written as it is gets replaced, counted in `replaced`."""
        if not rows:
            return []
        columns = [list(map(get, rows)) for get in self.getters]
        # Free text: every distinct string of the batch checked at once (most batches
        # hold nothing to mask). By type, not by annotation: a str is scrubbed wherever
        # it was put, as before. Numbers, None and bools need nothing.
        strings: set[Any] = set()
        plain: list[int] = []
        for i in self.texts:
            kinds = set(map(type, columns[i]))
            if kinds <= _SCALAR_TYPES:
                continue
            if kinds <= _STR_OR_NONE:
                strings.update(columns[i])
                plain.append(i)
            else:  # str subclasses, containers, bytes...: one value at a time
                columns[i] = [scrub_text(v) if isinstance(v, str) else v for v in columns[i]]
        strings.discard(None)
        if changed := scrub_texts(strings):
            for i in plain:
                columns[i] = [changed.get(v, v) for v in columns[i]]
        for i in self.jsons:
            count = None if replaced is None else _counter(replaced, self.columns[i])
            columns[i] = scrub_json_column(columns[i], count)
        if self.stream is not None:
            columns[self.stream] = list(map(int, map(bool, columns[self.stream])))
        if self.hash_columns:
            columns.append(list(map(self.hash_id, zip(*columns, strict=True))))
        elif None in columns[self.pk_index]:
            # A NULL primary key never conflicts: the row would be duplicated forever.
            from sqlite_utils.db import PrimaryKeyRequired

            raise PrimaryKeyRequired(f"a {self.table} row without {self.pk}")
        return list(zip(*columns, strict=True))

    def hash_id(self, values: Sequence[Any]) -> str:
        """sqlite-utils' hash_record of the (scrubbed) hash columns, which ids already
        stored were made with, so a re-sent row still finds its earlier copy. Built by
        hand for the usual str/int/None values (json.dumps costs ~4x more); anything else
        takes hash_record itself."""
        parts = []
        for _, prefix, index in self.hash_columns:
            value = values[index]
            kind = type(value)
            if kind is str:
                parts.append(prefix + _json_str(value))
            elif kind is int:
                parts.append(prefix + int.__repr__(value))
            elif value is None:
                parts.append(prefix + "null")
            else:
                record = {name: values[i] for name, _, i in self.hash_columns}
                from sqlite_utils.utils import hash_record

                return hash_record(record)
        return hashlib.sha1(("{" + ",".join(parts) + "}").encode()).hexdigest()

    def execute(
        self, conn: sqlite3.Connection, params: list[tuple[Any, ...]], replaced: Counter[str]
    ) -> None:
        try:
            conn.executemany(self.sql, params)
        except (sqlite3.ProgrammingError, OverflowError, UnicodeEncodeError):
            # A value sqlite3 cannot bind: a list in a text column or a Decimal (converted
            # as sqlite-utils did), text that is not valid UTF-8 or an int past 64 bits
            # (replaced, and counted). Then the batch runs again; the upsert makes rows
            # already written this transaction harmless to repeat. Rare, so not checked
            # up front.
            conn.executemany(self.sql, [self._bindable(row, replaced) for row in params])

    def _bindable(self, row: tuple[Any, ...], replaced: Counter[str]) -> list[Any]:
        out = []
        for name, value in zip(self.columns, row, strict=True):
            value, changed = _bindable(value)
            if changed:
                replaced[name] += 1
            out.append(value)
        return out


# json.dumps' own string encoder (ASCII-escaped, as hash_record's json.dumps writes).
_json_str: Callable[[str], str] = encode_basestring_ascii


_Prepared = TypeVar("_Prepared")
_SCALAR_TYPES = frozenset({int, float, bool, type(None)})
_STR_OR_NONE = frozenset({str, type(None)})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _counter(replaced: Counter[str], column: str) -> Callable[[], None]:
    return lambda: replaced.update((column,))


def _bindable(value: Any) -> tuple[Any, bool]:
    """A value sqlite3 can bind, and whether it had to be replaced rather than converted
    (text that is not valid UTF-8, an int past 64 bits, an object of no known kind)."""
    if isinstance(value, int) and not isinstance(value, bool) and not fits_int64(value):
        return str(value), True
    adapted, replaced = _adapt(value)
    if isinstance(adapted, str):
        text = escape_surrogates(adapted)
        return text, replaced or text is not adapted
    if adapted is None or isinstance(adapted, _BINDABLE):
        return adapted, replaced
    return escape_surrogates(str(adapted)), True


_BINDABLE = (int, float, bytes, bytearray, memoryview)


def _adapt(value: Any) -> tuple[Any, bool]:
    """A value sqlite3 cannot bind, as sqlite-utils stored it; containers scrubbed too.
    With whether it had to be replaced: a container json cannot write (too deep)."""
    if isinstance(value, decimal.Decimal):
        return float(value), False
    if isinstance(value, dict | list | tuple):
        try:
            return json.dumps(scrub_value(value), default=repr, ensure_ascii=False), False
        except (RecursionError, ValueError, TypeError):
            replaced: list[bool] = []
            text = scrub_json_fully(value, lambda: replaced.append(True))
            return text, bool(replaced)
    if isinstance(value, datetime.time | datetime.date | datetime.datetime):
        return value.isoformat(), False
    if isinstance(value, datetime.timedelta | uuid.UUID):
        return str(value), False
    return value, False


# A call is keyed by its own root span within its trace: calls of one trace never
# overwrite one another, and one sent again replaces its earlier copy.
_REQUESTS = _Writer(
    "requests",
    RequestRow,
    "span_id",
    json_fields=_MESSAGE_FIELDS,
    conflict=("trace_id", "span_id"),
)
_CALL_LAYOUT = store_traces.CallLayout(_REQUESTS.columns)
_SPANS = _Writer("spans", SpanRow, "span_id", json_fields=("attributes",))
_EVENTS = _Writer(
    "span_events",
    SpanEventRow,
    "id",
    json_fields=("attributes",),
    hash_id_columns=("span_id", "name", "time_ns"),
)
_SIGNALS = _Writer(
    "signals", SignalRow, "id", hash_id_columns=("trace_id", "type", "message_index", "snippet")
)


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
