"""The local trace store: schema and migrations, scrubbing, retention, queries, concurrency.

Every test runs on a real SQLite file under tmp_path.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import string
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import REPO
from sqlite_utils import Database
from sqlite_utils.db import PrimaryKeyRequired
from sqlite_utils.utils import hash_record

from proxy.config.redact import redact_text
from proxy.telemetry import store as store_module
from proxy.telemetry import store_schema, store_scrub
from proxy.telemetry.store import (
    RequestRow,
    SignalRow,
    SpanEventRow,
    SpanRow,
    StoreBatch,
    TraceRow,
    TraceStore,
    TraceStoreError,
)
from proxy.telemetry.store_scrub import SECRET_KEYS, is_secret_key, scrub_text

NOW = 1_750_000_000.0
DAY = 86_400
FAKE_KEY = "sk-test-0123456789abcdefghijklmnop"


def tid(i: int) -> str:
    return f"{i:032x}"


def sid(i: int, n: int = 0) -> str:
    return f"{i:012x}{n:04x}"


def req(i: int, started_at: float | None = None, **fields) -> RequestRow:
    """Request i: its own trace tid(i), its root span sid(i) (unless given)."""
    fields.setdefault("span_id", sid(i))
    return RequestRow(
        trace_id=fields.pop("trace_id", tid(i)),
        started_at=NOW + i if started_at is None else started_at,
        **fields,
    )


def stored(row: RequestRow, trace_started_at: float | None = None) -> RequestRow:
    """The row as the store gives it back: with its trace's first start."""
    started = row.started_at if trace_started_at is None else trace_started_at
    return dataclasses.replace(row, trace_started_at=started)


def trace(i: int, started_at: float | None = None, **fields) -> StoreBatch:
    """A request with two spans, an event and a signal, all under one trace id."""
    row = req(i, started_at, **fields)
    start_ns = int(row.started_at * 1e9)
    return StoreBatch(
        requests=[row],
        spans=[
            SpanRow(sid(i, 0), tid(i), "plano.request", start_ns, start_ns + 10),
            SpanRow(sid(i, 1), tid(i), "plano.upstream", start_ns + 1, start_ns + 9, sid(i, 0)),
        ],
        events=[SpanEventRow(sid(i, 1), tid(i), "first_token", start_ns + 5)],
        signals=[SignalRow(tid(i), "frustration", "interaction", 1, 0.8, "this is wrong")],
    )


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def table_counts(db: Path) -> dict[str, int]:
    tables = ("requests", "spans", "span_events", "signals")
    return {t: rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in tables}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"


@pytest.fixture
def store(db_path: Path):
    with TraceStore.open(db_path) as opened:
        yield opened


# -- schema, migrations, pragmas ---------------------------------------------------------


def test_new_file_gets_the_current_schema(store: TraceStore, db_path: Path) -> None:
    assert store_schema.SCHEMA_VERSION == 3
    assert rows(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]
    tables = {
        name for (name,) in rows(db_path, "SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {"meta", "requests", "spans", "span_events", "signals"} <= tables
    indexes = {
        name for (name,) in rows(db_path, "SELECT name FROM sqlite_master WHERE type='index'")
    }
    assert {
        "idx_requests_trace_started_at_trace_id",
        "idx_requests_model_trace_started_at_trace_id",
        "idx_requests_route_trace_started_at_trace_id",
        "idx_requests_status_trace_started_at_trace_id",
        "idx_requests_outcome_trace_started_at_trace_id",
        "idx_requests_started_at_span_id",
        "idx_spans_trace_id",
        "idx_span_events_trace_id",
        "idx_signals_trace_id",
        "idx_spans_start_ns",
        "idx_spans_filter_calls",
    } <= indexes


def test_wal_normal_sync_and_busy_timeout(store: TraceStore, db_path: Path) -> None:
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert store._db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_default_path_is_under_plano_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PLANO_HOME", str(tmp_path / "home" / "nested"))
    with TraceStore.open() as opened:
        assert opened.path == tmp_path / "home" / "nested" / "traces.db"
    assert opened.path.is_file()


def test_file_without_meta_is_migrated(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    with TraceStore.open(db_path) as opened:
        opened.write(trace(1))
        assert opened.count() == 1
    assert rows(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]


def test_version_zero_meta_is_migrated(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
    with TraceStore.open(db_path) as opened:
        assert opened.count() == 0
    assert rows(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("3",)]


def test_newer_schema_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    with pytest.raises(TraceStoreError, match=r"newer Plano \(schema 99.*--db elsewhere"):
        TraceStore.open(db_path)


def test_only_missing_migrations_run_in_order(db_path: Path, monkeypatch) -> None:
    TraceStore.open(db_path).close()  # at the current version
    now = store_schema.SCHEMA_VERSION
    ran: list[int] = []

    def next_one(db) -> None:
        ran.append(now + 1)
        db["requests"].add_column("region", str)

    def the_one_after(db) -> None:
        ran.append(now + 2)
        db["requests"].create_index(["region"])

    monkeypatch.setattr(
        store_schema, "MIGRATIONS", [*store_schema.MIGRATIONS, next_one, the_one_after]
    )
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", now + 2)
    TraceStore.open(db_path).close()
    TraceStore.open(db_path).close()  # already current: nothing runs again
    assert ran == [now + 1, now + 2]
    assert rows(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(now + 2),)]
    assert "region" in {r[1] for r in rows(db_path, "PRAGMA table_info(requests)")}


def test_a_failing_migration_changes_nothing(db_path: Path, monkeypatch) -> None:
    TraceStore.open(db_path).close()

    def broken(db) -> None:
        db["half_done"].create({"x": int})
        raise sqlite3.OperationalError("disk on fire")

    monkeypatch.setattr(store_schema, "MIGRATIONS", [*store_schema.MIGRATIONS, broken])
    now = store_schema.SCHEMA_VERSION
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", now + 1)
    with pytest.raises(TraceStoreError, match="disk on fire"):
        TraceStore.open(db_path)
    assert rows(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(now),)]
    assert rows(db_path, "SELECT name FROM sqlite_master WHERE name = 'half_done'") == []


def test_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(TraceStoreError, match="cannot open the trace store"):
        TraceStore.open(tmp_path / "file" / "traces.db")


# -- writes --------------------------------------------------------------------------------


def test_writing_twice_does_not_duplicate(store: TraceStore, db_path: Path) -> None:
    store.write(trace(1, status=200))
    store.write(trace(1, status=200))
    assert table_counts(db_path) == {"requests": 1, "spans": 2, "span_events": 1, "signals": 1}
    store.write(trace(1, status=502, error="upstream timed out"))  # the later summary wins
    assert table_counts(db_path) == {"requests": 1, "spans": 2, "span_events": 1, "signals": 1}
    detail = store.get_trace(tid(1))
    assert detail is not None
    (call,) = detail.calls
    assert (call.status, call.error) == (502, "upstream timed out")


def test_round_trip_keeps_types(store: TraceStore) -> None:
    messages = [{"role": "user", "content": 'say "hi"\nthen stop'}]
    store.write(
        StoreBatch(
            requests=[
                req(1, stream=True, request_messages=messages, cost_usd=0.25, input_tokens=7)
            ],
            spans=[SpanRow(sid(1), tid(1), "s", 1, 2, attributes={"n": 3, "ok": True})],
        )
    )
    detail = store.get_trace(tid(1))
    assert detail is not None
    assert detail.calls == [
        stored(req(1, stream=True, request_messages=messages, cost_usd=0.25, input_tokens=7))
    ]
    assert detail.spans[0].attributes == {"n": 3, "ok": True}


def test_secrets_never_reach_the_file(db_path: Path) -> None:
    cookie = "session=opaque-cookie-value-42"
    plain_header = "plain-header-secret-99"
    batch = StoreBatch(
        requests=[
            req(
                1,
                path=f"/v1/chat/completions?api_key={FAKE_KEY}",
                error=f"401 Incorrect API key provided: {FAKE_KEY}",
                request_messages=[{"role": "user", "content": f"my key is {FAKE_KEY}, use it"}],
                response_messages=[{"role": "assistant", "content": f"Bearer {FAKE_KEY}"}],
            )
        ],
        spans=[
            SpanRow(
                sid(1),
                tid(1),
                "plano.upstream",
                1,
                2,
                attributes={
                    "http.request.header.authorization": ["Bearer opaque"],
                    "Authorization": "Bearer opaque",
                    "upstream": {"headers": {"X-Api-Key": plain_header, "Cookie": cookie}},
                    "proxy_authorization": "Basic abc",
                    "gen_ai.prompt": f"key={FAKE_KEY}",
                },
            )
        ],
        events=[SpanEventRow(sid(1), tid(1), "log", 5, {"set-cookie": cookie, "m": FAKE_KEY})],
        signals=[SignalRow(tid(1), "leak", snippet=f"pasted {FAKE_KEY}")],
    )
    store = TraceStore.open(db_path)
    store.write(batch)

    def file_bytes() -> bytes:
        wal = db_path.with_name(db_path.name + "-wal")
        return db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")

    secrets = [FAKE_KEY, "0123456789abcdefghijklmnop", "opaque", plain_header, cookie, "Basic abc"]
    data = file_bytes()  # before the checkpoint the batch lives in the WAL
    assert [s for s in secrets if s.encode() in data] == []
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = file_bytes()
    assert b"plano.upstream" in data  # the rows did reach the main file
    assert [s for s in secrets if s.encode() in data] == []
    # What is left around the masks stays readable.
    store = TraceStore.open(db_path)
    detail = store.get_trace(tid(1))
    store.close()
    assert detail is not None
    assert detail.calls[0].request_messages[0]["content"] == "my key is ********, use it"
    assert set(detail.spans[0].attributes) == {"upstream", "gen_ai.prompt"}
    assert detail.spans[0].attributes["upstream"] == {"headers": {}}


@pytest.mark.parametrize(
    "key",
    [
        "Authorization",
        "authorization",
        "Proxy-Authorization",
        "x-api-key",
        "X_API_KEY",
        "api-key",
        "Cookie",
        "set-cookie",
        "http.request.header.authorization",
        "http.response.header.set-cookie",
    ],
)
def test_secret_header_keys(key: str) -> None:
    assert is_secret_key(key)


def test_the_cheap_check_skips_only_what_redact_text_would_keep() -> None:
    # scrub_text skips redact_text when a quick search finds nothing it could mask; on
    # strings built from the patterns' own pieces both must always agree.
    pieces = ["key", "Token", "PASSWORD", "auth", "cookie", "dsn", ": ", "=", "?", "&", "@",
              "https://", "Bearer ", "basic ", "sk-", "AK_", "ſecret", " ", ",", "\n", "x",
              "abc123", "0123456789" * 4, "-", "_", "é", "}"]  # fmt: skip
    rng = random.Random(3)
    samples = ["".join(rng.choices(pieces, k=rng.randint(1, 8))) for _ in range(5000)]
    samples += ["ab", "plain words only", "A" * 39, "A" * 40, "sk-abcdef", "desk-top"]
    for text in samples:
        assert scrub_text(text) == redact_text(text, limit=sys.maxsize), text


@pytest.mark.parametrize("key", ["model", "http.request.header.content-type", "keyword"])
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_secret_key(key)


# -- the write path: same rows as the sqlite-utils upsert it replaced, at less cost -------


def _ref_secret_key(key: str) -> bool:
    name = key.lower().replace("_", "-")
    return name in SECRET_KEYS or name.rpartition(".")[2] in SECRET_KEYS


def _ref_value(value: Any) -> Any:
    """store_scrub's rules with none of its shortcuts: every string through redact_text."""
    if isinstance(value, str):
        return redact_text(value, limit=sys.maxsize)
    if isinstance(value, dict):
        return {
            k: _ref_value(v)
            for k, v in value.items()
            if not (isinstance(k, str) and _ref_secret_key(k))
        }
    if isinstance(value, list | tuple):
        return [_ref_value(v) for v in value]
    return value


def _ref_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return orjson.dumps(redact_text(value, limit=sys.maxsize)).decode()
    return orjson.dumps(_ref_value(value), default=str).decode()


def _ref_record(row: Any, json_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """What TraceStore.write stored before it left sqlite-utils (its `_record`)."""
    record = {}
    for f in dataclasses.fields(row):
        value = getattr(row, f.name)
        if f.name in json_fields:
            value = _ref_json(value)
        elif isinstance(value, str) and f.name not in {"trace_id", "span_id", "parent_id", "id"}:
            value = redact_text(value, limit=sys.maxsize)
        record[f.name] = value
    return record


def write_the_old_way(db: Database, batch: StoreBatch) -> None:
    requests = []
    for r in batch.requests:
        record = _ref_record(r, ("request_messages", "response_messages"))
        record["stream"] = int(bool(r.stream))
        record["trace_started_at"] = r.started_at  # each random request has its own trace
        requests.append(record)
    spans = [_ref_record(s, ("attributes",)) for s in batch.spans]
    events = [_ref_record(e, ("attributes",)) for e in batch.events]
    signals = [_ref_record(s) for s in batch.signals]
    for record in events + signals:
        del record["id"]
    with db.atomic():
        if requests:
            db["requests"].upsert_all(requests, pk=("trace_id", "span_id"))
        if spans:
            db["spans"].upsert_all(spans, pk="span_id")
        if events:
            db["span_events"].upsert_all(
                events, hash_id="id", hash_id_columns=("span_id", "name", "time_ns")
            )
        if signals:
            db["signals"].upsert_all(
                signals,
                hash_id="id",
                hash_id_columns=("trace_id", "type", "message_index", "snippet"),
            )


class Text(str):
    """A str subclass: scrubbed like any str, but not the fast path's exact type."""


TEXTS = [
    "plain", "gpt-4o", "/v1/chat/completions", "first_token", "max_tokens", "",
    FAKE_KEY, f"Bearer {FAKE_KEY}", "Basic abc", "https://user:pw@host/x?api_key=zzz",
    "password: hunter2", "Straße", "ſk-abcdefgh", "\u212aey: value", 'say "hi" \\ there',
    "ctrl\x01char\nnext", "x" * 45, "a-b_c" * 9, "desk-top", "sk-", "token", "null",
    '{"json": "text", "api_key": "zzz"}', "é" * 3, "ok\x00nul",
]  # fmt: skip
KEYS = [
    "model", "Authorization", "x_api_key", "http.request.header.cookie", "Set-Cookie",
    "llm.usage.prompt_tokens", "gen_ai.prompt", "url.full", "plano.route", "nested",
]  # fmt: skip


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.4 or depth > 2:
        return rng.choice([*TEXTS, 0, 7, -3, 2**40, 1.5, True, False, None])
    if roll < 0.6:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.7:
        return tuple(random_value(rng, depth + 1) for _ in range(rng.randint(0, 2)))
    return random_dict(rng, depth + 1)


def random_dict(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    keys = rng.sample(KEYS, rng.randint(0, 4))
    return {key: random_value(rng, depth) for key in keys}


def random_json(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            None,
            random_dict(rng),
            [{"role": "user", "content": rng.choice(TEXTS)}, random_value(rng)],
            orjson.dumps(random_dict(rng)).decode(),  # JSON given as text
            orjson.dumps([rng.choice(TEXTS)]),  # as bytes
            rng.choice(TEXTS),  # text that is not JSON
            OrderedDict(random_dict(rng)),
            5,
        ]
    )


def random_text(rng: random.Random) -> Any:
    return rng.choice([None, None, *TEXTS, Text(rng.choice(TEXTS))])


def random_batch(rng: random.Random, first: int, n: int) -> StoreBatch:
    batch = StoreBatch()
    for i in range(first, first + n):
        batch.requests.append(
            req(
                i,
                request_id=random_text(rng),
                model=random_text(rng),
                error=random_text(rng),
                path=random_text(rng),
                session=random_text(rng),
                status=rng.choice([200, 500, None]),
                latency_ms=rng.choice([1.25, None]),
                stream=rng.choice([True, False, 0, 1]),
                request_messages=random_json(rng),
                response_messages=random_json(rng),
            )
        )
        for n_span in range(rng.randint(0, 3)):
            attributes = rng.choice([random_dict(rng), random_json(rng) or {}])
            batch.spans.append(
                SpanRow(
                    sid(i, n_span),
                    tid(i),
                    rng.choice(TEXTS),
                    n_span,
                    rng.choice([None, 9]),
                    rng.choice([None, sid(i, 0)]),
                    status_message=random_text(rng),
                    attributes=attributes,
                )
            )
            for _ in range(rng.randint(0, 2)):
                batch.events.append(
                    SpanEventRow(
                        sid(i, n_span),
                        tid(i),
                        rng.choice(["first_token", "log", *TEXTS[:8]]),
                        rng.choice([5, 6, 2**62]),
                        random_dict(rng),
                    )
                )
        for _ in range(rng.randint(0, 2)):
            batch.signals.append(
                SignalRow(
                    tid(i),
                    rng.choice(["frustration", "leak", "é"]),
                    random_text(rng),
                    rng.choice([None, 0, 3]),
                    rng.choice([None, 0.5]),
                    random_text(rng),
                )
            )
    return batch


def table_rows(db: Path) -> dict[str, list[tuple]]:
    order = {
        "requests": "trace_id, span_id",
        "spans": "span_id",
        "span_events": "id",
        "signals": "id",
    }
    return {t: rows(db, f"SELECT * FROM {t} ORDER BY {k}") for t, k in order.items()}


@pytest.mark.parametrize("seed", range(6))
def test_write_stores_what_the_sqlite_utils_upsert_stored(tmp_path: Path, seed: int) -> None:
    # The same random batches, some rows sent twice (within a batch and across batches),
    # written by TraceStore.write and by the sqlite-utils upsert with every string through
    # redact_text: the same rows, byte for byte, hash ids included.
    rng = random.Random(seed)
    batches = [random_batch(rng, first, 12) for first in (0, 12, 6)]
    batches[0].spans += batches[0].spans[:2]
    batches[1].events += batches[0].events[:3]
    new_path, old_path = tmp_path / "new.db", tmp_path / "old.db"
    with TraceStore.open(new_path) as store:
        for batch in batches:
            store.write(batch)
    TraceStore.open(old_path).close()
    old = Database(old_path)
    for batch in batches:
        write_the_old_way(old, batch)
    old.close()
    assert table_counts(new_path)["requests"] == 24
    assert table_rows(new_path) == table_rows(old_path)


def test_resending_a_batch_duplicates_no_event_or_signal(store: TraceStore, db_path: Path) -> None:
    batch = trace(1)
    batch.events += [
        SpanEventRow(sid(1, 1), tid(1), "first_token", 6),  # same name, later time
        SpanEventRow(sid(1, 0), tid(1), 'Straße\n"é"', 5, {"n": 1}),
    ]
    batch.signals += [
        SignalRow(tid(1), "frustration", "interaction", None, 0.5, None),
        SignalRow(tid(1), "leak", snippet=f"pasted {FAKE_KEY} ſ"),
    ]
    store.write(batch)
    first = table_rows(db_path)
    assert table_counts(db_path) == {"requests": 1, "spans": 2, "span_events": 3, "signals": 3}
    store.write(batch)
    store.write(StoreBatch(events=batch.events[1:], signals=batch.signals[::-1]))
    assert table_rows(db_path) == first
    # The ids are sqlite-utils' hash_record of the scrubbed columns, as before the rewrite:
    # files written by then still match what is sent again.
    expected = {
        hash_record({"span_id": e.span_id, "name": e.name, "time_ns": e.time_ns})
        for e in batch.events
    }
    assert {i for (i,) in rows(db_path, "SELECT id FROM span_events")} == expected
    leak = batch.signals[-1]
    leak_id = hash_record(
        {"trace_id": tid(1), "type": "leak", "message_index": None, "snippet": "pasted ******** ſ"}
    )
    assert rows(db_path, f"SELECT snippet FROM signals WHERE id = '{leak_id}'") == [
        ("pasted ******** ſ",)
    ]
    assert leak.snippet is not None


@pytest.mark.parametrize(
    "values",
    [
        ["x", 5, None],
        ["é", 2**63, None],  # past int64: hash_record's own json.dumps
        ["x", 1.5, "y"],
        ["x", True, "y"],
        ['"quoted"\n\\', -1, "ſ"],
    ],
)
def test_hash_ids_are_hash_records(values: list[Any]) -> None:
    writer = store_module._SIGNALS
    row = SignalRow(values[0], "t", message_index=values[1], snippet=values[2])
    (params,) = writer.params([row])
    record = {"trace_id": values[0], "type": "t", "message_index": values[1], "snippet": values[2]}
    assert params[-1] == hash_record(record)


def test_secrets_are_scrubbed_among_clean_rows(db_path: Path) -> None:
    # Most rows are clean and skip the per-value work; the one carrying secrets, in every
    # place a value can hide, must not.
    batch = StoreBatch()
    for i in range(60):
        batch.requests.append(req(i, model="gpt-4o", path="/v1/chat/completions"))
        batch.spans.append(
            SpanRow(
                sid(i),
                tid(i),
                "plano(llm)",
                i,
                attributes={"llm.usage.prompt_tokens": 3, "llm.model": "gpt-4o", "n": [1, 2]},
            )
        )
        batch.events.append(SpanEventRow(sid(i), tid(i), "first_token", i))
    dirty = StoreBatch(
        requests=[
            req(
                99,
                error=f"upstream said: invalid key {FAKE_KEY}",
                request_messages=[{"role": "user", "content": f"use {FAKE_KEY}"}],
                response_messages={"output": [{"text": f"Bearer {FAKE_KEY}"}]},
            )
        ],
        spans=[
            SpanRow(
                sid(99),
                tid(99),
                "plano(llm)",
                1,
                status_message=f"401 for {FAKE_KEY}",
                attributes={
                    "llm.usage.prompt_tokens": 3,
                    "upstream": {"args": ["-H", f"x-api-key: {FAKE_KEY}"], "Cookie": "c=opaque"},
                    "http.request.header.x-api-key": "plain-header-secret-99",
                },
            )
        ],
        events=[SpanEventRow(sid(99), tid(99), "log", 2, {"line": [f"key={FAKE_KEY}"]})],
        signals=[SignalRow(tid(99), "leak", snippet=f"pasted {FAKE_KEY}")],
    )
    for name in ("requests", "spans", "events", "signals"):
        getattr(batch, name)[30:30] = getattr(dirty, name)
    with TraceStore.open(db_path) as store:
        store.write(batch)
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        clean = store.get_trace(tid(7))
        detail = store.get_trace(tid(99))
    data = db_path.read_bytes()
    for secret in ("0123456789abcdefghijklmnop", "opaque", "plain-header-secret-99"):
        assert secret.encode() not in data
    assert clean is not None
    assert clean.spans[0].attributes == batch.spans[7 if 7 < 30 else 8].attributes
    assert detail is not None
    assert detail.spans[0].attributes == {
        "llm.usage.prompt_tokens": 3,
        "upstream": {"args": ["-H", "x-api-key: ********"]},
    }
    assert detail.spans[0].status_message == "401 for ********"
    assert detail.events[0].attributes == {"line": ["key=********"]}
    # What the store remembers as harmless never holds a secret.
    assert not [t for t in store_scrub.KNOWN_UNCHANGED if "0123456789abcdef" in t]


def test_odd_values_still_bind_and_are_scrubbed(store: TraceStore, db_path: Path) -> None:
    store.write(
        StoreBatch(
            requests=[
                req(
                    1,
                    error=["refused", FAKE_KEY],  # type: ignore[arg-type]
                    cost_usd=Decimal("0.5"),  # type: ignore[arg-type]
                    route=Text(f"Bearer {FAKE_KEY}"),
                    session=None,
                )
            ]
        )
    )
    assert rows(db_path, "SELECT error, cost_usd, route, session IS NULL FROM requests") == [
        ('["refused", "********"]', 0.5, "Bearer ********", 1)
    ]


def test_a_row_without_its_key_writes_nothing(store: TraceStore) -> None:
    batch = trace(1)
    batch.spans.append(SpanRow(None, tid(1), "x", 1))  # type: ignore[arg-type]
    with pytest.raises(PrimaryKeyRequired, match="spans row without span_id"):
        store.write(batch)
    assert store.count() == 0


def test_scrub_json_column_is_scrub_json_fully() -> None:
    rng = random.Random(11)
    values = [random_json(rng) for _ in range(400)] + [random_dict(rng) for _ in range(400)]
    for start in range(0, len(values), 50):  # columns of mixed and of uniform kinds
        chunk = values[start : start + 50]
        assert store_scrub.scrub_json_column(chunk) == [_ref_json(v) for v in chunk]
    dicts = [random_dict(rng) for _ in range(300)]
    assert store_scrub.scrub_json_column(dicts) == [_ref_json(v) for v in dicts]
    assert [store_scrub.scrub_json(v) for v in dicts[:50]] == [_ref_json(v) for v in dicts[:50]]


def test_scrub_texts_finds_exactly_what_scrub_text_changes() -> None:
    rng = random.Random(5)
    texts = {"".join(rng.choices(TEXTS, k=rng.randint(1, 3))) for _ in range(500)}
    texts |= {f"clean text {i}" for i in range(500)}
    changed = store_scrub.scrub_texts(texts)
    assert changed == {
        t: redact_text(t, limit=sys.maxsize)
        for t in texts
        if redact_text(t, limit=sys.maxsize) != t
    }
    for indexes in ([], [0], [3, 4], [17, 499, 998]):
        sample = [f"clean {i}" for i in range(999)]
        for i in indexes:
            sample[i] = f"token {i}"
        assert store_scrub.unclean(sample) == indexes


def test_the_fast_checks_agree_with_the_regexes() -> None:
    # is_clean's substring tests, lower() for ASCII and the byte table must give exactly
    # the answer of the regexes they replace, on str and on orjson's UTF-8 alike.
    pieces = ["key", "tok", "en", "sk", "-", "_", "ak", "K", "\u212a", "ſ", "ß", "://",
              "A" * 20, "b" * 21, "é", " ", "\x00", '"', "\\", "Bearer", "DSN", "passw",
              "x", "0"]  # fmt: skip
    rng = random.Random(8)
    folded_regex = store_scrub._MIGHT_REDACT
    for _ in range(5000):
        text = "".join(rng.choices(pieces, k=rng.randint(0, 12)))
        expected = not (
            folded_regex.search(text.casefold()) or store_scrub._LONG_TOKEN.search(text)
        )
        assert store_scrub._has_long_token(text) == bool(store_scrub._LONG_TOKEN.search(text))
        assert store_scrub.is_clean(text) == expected, text
        assert store_scrub._is_clean_utf8(text.encode()) == expected, text
    assert store_scrub._PLAIN_WORDS  # else the regex serves, correct but slower


def test_scrub_caches_stay_bounded(monkeypatch) -> None:
    monkeypatch.setattr(store_scrub, "_CACHE_MAX", 8)
    for i in range(50):
        assert not is_secret_key(f"header.{i}")
        assert scrub_text(f"token {i}") == f"token {i}"  # a false alarm, remembered
        store_scrub.scrub_json_column([{f"k{i}": 1, "Cookie": "c"}])
    assert is_secret_key("X-Api-Key")
    assert len(store_scrub._SECRET_KEY_CACHE) <= 8
    assert len(store_scrub.KNOWN_UNCHANGED) <= 8
    assert len(store_scrub._KEY_SET_CACHE) <= 8


def test_casefold_shows_every_secret_key_word() -> None:
    # is_clean reads JSON text casefolded; is_secret_key lowercases. A secret key must be
    # caught by the former: every name holds a credential word, and casefold agrees with
    # lower() on every character that lower() turns into an ASCII letter.
    assert all(store_scrub._MIGHT_REDACT.search(name) for name in SECRET_KEYS)
    letters = set(string.ascii_letters)
    odd = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if set(chr(cp).lower()) & letters and chr(cp).lower() != chr(cp).casefold()
    ]
    assert odd == []


# -- retention -----------------------------------------------------------------------------


def test_prune_by_age_takes_child_rows(db_path: Path) -> None:
    with TraceStore.open(db_path, retention_days=7) as opened:
        opened.write(trace(1, started_at=NOW - 8 * DAY))
        opened.write(trace(2, started_at=NOW - 6 * DAY))
        assert opened.prune(now=NOW) == 1
        assert [r.trace_id for r in opened.list_traces()] == [tid(2)]
        assert opened.get_trace(tid(1)) is None
    assert table_counts(db_path) == {"requests": 1, "spans": 2, "span_events": 1, "signals": 1}


def test_prune_by_count_keeps_the_newest(db_path: Path) -> None:
    with TraceStore.open(db_path, max_requests=3) as opened:
        for i in range(5):
            opened.write(trace(i, started_at=NOW - 100 + i))
        assert opened.prune(now=NOW) == 2
        assert [r.trace_id for r in opened.list_traces()] == [tid(4), tid(3), tid(2)]
    assert table_counts(db_path) == {"requests": 3, "spans": 6, "span_events": 3, "signals": 3}
    assert {t for (t,) in rows(db_path, "SELECT DISTINCT trace_id FROM spans")} == {
        tid(2),
        tid(3),
        tid(4),
    }


def test_prune_sweeps_old_spans_whose_summary_never_came(db_path: Path) -> None:
    old_ns = int((NOW - 8 * DAY) * 1e9)
    new_ns = int((NOW - 1) * 1e9)
    with TraceStore.open(db_path) as opened:
        opened.write(
            StoreBatch(
                spans=[SpanRow(sid(1), tid(1), "x", old_ns), SpanRow(sid(2), tid(2), "x", new_ns)],
                events=[SpanEventRow(sid(1), tid(1), "e", old_ns)],
            )
        )
        assert opened.prune(now=NOW) == 0
        assert opened.get_trace(tid(1)) is None
        in_flight = opened.get_trace(tid(2))
    assert in_flight is not None
    assert (in_flight.summary, in_flight.calls) == (None, [])
    assert table_counts(db_path)["span_events"] == 0


def test_prune_runs_by_itself_every_n_requests(db_path: Path) -> None:
    recent = time.time() - 60  # the automatic prune uses the clock: stay inside retention
    with TraceStore.open(db_path, max_requests=1, prune_every=2) as opened:
        opened.write(trace(1, recent))
        assert opened.count() == 1
        opened.write(trace(2, recent + 1))  # the second request written triggers a prune
        assert [r.trace_id for r in opened.list_traces()] == [tid(2)]
        opened.write(trace(3, recent + 2))
        assert opened.count() == 2


def test_prune_by_count_breaks_ties_by_trace_id(db_path: Path) -> None:
    with TraceStore.open(db_path, max_requests=3) as opened:
        opened.write(StoreBatch(requests=[req(i, NOW) for i in (4, 1, 3, 0, 2)]))
        assert opened.prune(now=NOW) == 2
        assert ids(opened.list_traces()) == [4, 3, 2]  # newest first: the highest ids


def test_prune_reads_only_what_it_deletes(store: TraceStore) -> None:
    # prune runs every prune_every requests: none of its lookups may scan a table or an
    # index whole (an OFFSET over all requests, or DISTINCT over all spans, did).
    store.write(trace(1))
    plans = {
        sql: " ".join(r[-1] for r in store._db.execute(f"EXPLAIN QUERY PLAN {sql}", [0]))
        for sql in (
            store_module._ORPHAN_SPANS,
            "SELECT trace_id FROM requests WHERE trace_started_at < ?",
            "SELECT trace_id FROM requests GROUP BY trace_started_at, trace_id"
            " ORDER BY trace_started_at, trace_id LIMIT ?",
        )
    }
    assert "SEARCH spans USING INDEX idx_spans_start_ns" in plans[store_module._ORPHAN_SPANS]
    for sql, plan in plans.items():
        assert "SCAN spans" not in plan, sql
        assert "TEMP B-TREE" not in plan, sql


# -- list_traces ---------------------------------------------------------------------------


@pytest.fixture
def varied(store: TraceStore) -> TraceStore:
    specs = [
        {
            "model": "gpt",
            "route": "code",
            "status": 200,
            "provider": "openai",
            "listener": "main",
            "api": "openai_chat",
            "session": "s1",
            "latency_ms": 100.0,
        },
        {
            "model": "claude",
            "route": "chat",
            "status": 500,
            "provider": "anthropic",
            "listener": "main",
            "api": "anthropic_messages",
            "session": "s2",
            "latency_ms": 900.0,
            "error": "upstream 500",
        },
        {
            "model": "gpt",
            "route": "chat",
            "status": 429,
            "provider": "openai",
            "listener": "edge",
            "api": "openai_responses",
            "session": "s1",
            "latency_ms": 300.0,
            "signal_count": 2,
        },
        {
            "model": "llama",
            "route": None,
            "status": 200,
            "provider": "ollama",
            "listener": "edge",
            "api": "openai_chat",
            "session": None,
            "latency_ms": 50.0,
            "request_messages": [{"role": "user", "content": "100% of the_files"}],
            "response_messages": [{"role": "assistant", "content": 'He said "refactor it"'}],
        },
    ]
    store.write(StoreBatch(requests=[req(i, **spec) for i, spec in enumerate(specs)]))
    store.write(StoreBatch(signals=[SignalRow(tid(1), "escalation")]))  # no signal_count set
    return store


def ids(found: list[RequestRow] | list[TraceRow]) -> list[int]:
    return [int(r.trace_id, 16) for r in found]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({}, [3, 2, 1, 0]),
        ({"model": "gpt"}, [2, 0]),
        ({"route": "chat"}, [2, 1]),
        ({"status": "200"}, [3, 0]),
        ({"provider": "anthropic"}, [1]),
        ({"listener": "edge"}, [3, 2]),
        ({"api": "openai_chat"}, [3, 0]),
        ({"session": "s1"}, [2, 0]),
        ({"model": "gpt", "route": "chat", "status": "429"}, [2]),
        ({"model": "nope"}, []),
    ],
)
def test_list_filters_by_equality(varied: TraceStore, where: dict, expected: list[int]) -> None:
    assert ids(varied.list_traces(where=where)) == expected


def test_list_filters_by_time_latency_and_signals(varied: TraceStore) -> None:
    assert ids(varied.list_traces(since=NOW + 1)) == [3, 2, 1]
    assert ids(varied.list_traces(until=NOW + 2)) == [1, 0]
    assert ids(varied.list_traces(since=NOW + 1, until=NOW + 3)) == [2, 1]
    assert ids(varied.list_traces(min_latency_ms=300)) == [2, 1]
    assert ids(varied.list_traces(has_signals=True)) == [2, 1]  # a count, or signal rows
    assert ids(varied.list_traces(has_signals=False)) == [3, 0]
    assert ids(varied.list_traces(limit=2)) == [3, 2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("UPSTREAM 500", [1]),  # the error, case-insensitively
        ("100%", [3]),  # LIKE wildcards are taken literally
        ("the_files", [3]),
        ("the%files", []),
        ("of_the", []),  # "_" would match the space
        ('said "refactor', [3]),  # quotes as written, though stored JSON-escaped
        ("nowhere", []),
    ],
)
def test_list_text_search(varied: TraceStore, text: str, expected: list[int]) -> None:
    assert ids(varied.list_traces(text=text)) == expected


def test_messages_come_with_the_trace_not_the_list(varied: TraceStore) -> None:
    (row,) = varied.list_traces(where={"model": "llama"})
    assert not hasattr(row, "request_messages")  # a list row is a trace's sums
    detail = varied.get_trace(row.trace_id)
    assert detail is not None
    assert detail.calls[0].request_messages == [{"role": "user", "content": "100% of the_files"}]


def test_unknown_filter_key_names_the_allowed_ones(varied: TraceStore) -> None:
    with pytest.raises(ValueError, match=r"'model; DROP TABLE requests'.*api, listener, model"):
        varied.list_traces(where={"model; DROP TABLE requests": "x"})
    with pytest.raises(ValueError, match="status must be a number"):
        varied.list_traces(where={"status": "5xx"})
    with pytest.raises(ValueError, match="outcome must be one of ok, error, stream_error"):
        varied.list_traces(where={"outcome": "failed"})
    with pytest.raises(ValueError, match="allowed: model, route"):
        varied.stats(group_by="provider")  # type: ignore[arg-type]


def test_keyset_pages_have_no_gaps_or_duplicates(store: TraceStore) -> None:
    # 23 requests over only 5 distinct start times: the trace id breaks the ties.
    store.write(
        StoreBatch(
            requests=[req(i, NOW + i % 5, model="gpt" if i % 3 else "claude") for i in range(23)]
        )
    )
    for where, size in (({}, 4), ({"model": "gpt"}, 3)):
        expected = store.list_traces(where=where, limit=1000)
        pages: list[TraceRow] = []
        cursor = None
        while page := store.list_traces(where=where, limit=size, before=cursor):
            pages += page
            cursor = (page[-1].started_at, page[-1].trace_id)
        assert [r.trace_id for r in pages] == [r.trace_id for r in expected]
        assert len({r.trace_id for r in pages}) == len(expected)
        keys = [(r.started_at, r.trace_id) for r in pages]
        assert keys == sorted(keys, reverse=True)
    assert len(store.list_traces(limit=1000)) == 23


def test_newest_after_tails_oldest_first(store: TraceStore) -> None:
    # Calls, by their own start: two of them in one trace.
    store.write(StoreBatch(requests=[req(i, NOW + i // 2) for i in range(5)]))
    store.write(StoreBatch(requests=[req(5, NOW + 2.5, trace_id=tid(0))]))
    first = store.newest_after(NOW, sid(0), limit=3)
    assert [r.span_id for r in first] == [sid(1), sid(2), sid(3)]  # sid(1) starts with sid(0)
    rest = store.newest_after(first[-1].started_at, first[-1].span_id or "", limit=10)
    assert [(r.span_id, r.trace_id) for r in rest] == [(sid(4), tid(4)), (sid(5), tid(0))]
    assert store.newest_after(rest[-1].started_at, rest[-1].span_id or "") == []


# -- get_trace -----------------------------------------------------------------------------


def test_get_trace_orders_spans_by_start(store: TraceStore) -> None:
    batch = trace(7)
    batch.spans.reverse()
    store.write(batch)
    detail = store.get_trace(tid(7))
    assert detail is not None
    assert [s.name for s in detail.spans] == ["plano.request", "plano.upstream"]
    assert detail.spans[1].parent_id == detail.spans[0].span_id
    assert [e.name for e in detail.events] == ["first_token"]
    assert [(s.type, s.group, s.message_index) for s in detail.signals] == [
        ("frustration", "interaction", 1)
    ]
    assert store.get_trace(tid(8)) is None


# -- stats ---------------------------------------------------------------------------------


@pytest.fixture
def measured(store: TraceStore) -> TraceStore:
    specs = [  # (model, route, status, latency, ttft, in, out, cost)
        ("a", "code", 200, 100.0, 10.0, 10, 1, 0.01),
        ("a", "code", 200, 200.0, 20.0, 20, 2, 0.02),
        ("a", "chat", 500, 300.0, 30.0, 30, 3, 0.03),
        ("a", "chat", 429, 400.0, 40.0, 40, 4, 0.04),
        ("a", "chat", 200, 1000.0, None, 50, 5, None),
        ("b", "chat", 404, 50.0, 5.0, 7, None, 0.5),
    ]
    store.write(
        StoreBatch(
            requests=[
                req(
                    i,
                    model=m,
                    route=r,
                    status=s,
                    latency_ms=lat,
                    ttft_ms=t,
                    input_tokens=n,
                    output_tokens=o,
                    cost_usd=c,
                )
                for i, (m, r, s, lat, t, n, o, c) in enumerate(specs)
            ]
        )
    )
    return store


def test_stats_by_model_hand_computed(measured: TraceStore) -> None:
    # Percentiles interpolate between ranks: rank = (n - 1) * q / 100.
    # a's latencies 100 200 300 400 1000: p50 rank 2 -> 300; p95 rank 3.8 -> 400 + .8 * 600.
    # a's TTFTs 10 20 30 40 (one missing): p50 rank 1.5 -> 25; p95 rank 2.85 -> 38.5.
    a, b = measured.stats(group_by="model")
    assert (a.key, a.count, a.errors, a.error_rate) == ("a", 5, 2, 0.4)
    assert a.p50_latency_ms == pytest.approx(300.0)
    assert a.p95_latency_ms == pytest.approx(880.0)
    assert a.p50_ttft_ms == pytest.approx(25.0)
    assert a.p95_ttft_ms == pytest.approx(38.5)
    assert (a.input_tokens, a.output_tokens) == (150, 15)
    assert a.cost_usd == pytest.approx(0.10)
    assert (b.key, b.count, b.errors, b.error_rate) == ("b", 1, 1, 1.0)
    assert (b.p50_latency_ms, b.p95_latency_ms, b.p50_ttft_ms) == (50.0, 50.0, 5.0)
    assert (b.input_tokens, b.output_tokens, b.cost_usd) == (7, 0, 0.5)


def test_stats_by_route_with_filters(measured: TraceStore) -> None:
    chat, code = measured.stats(group_by="route")
    assert (chat.key, chat.count, chat.errors) == ("chat", 4, 3)
    # chat's latencies 50 300 400 1000: p50 rank 1.5 -> 350; p95 rank 2.85 -> 400 + .85 * 600.
    assert chat.p50_latency_ms == pytest.approx(350.0)
    assert chat.p95_latency_ms == pytest.approx(910.0)
    assert (code.key, code.count, code.errors, code.error_rate) == ("code", 2, 0, 0.0)
    (only,) = measured.stats(group_by="route", where={"model": "a"}, since=NOW + 3)
    assert (only.key, only.count, only.input_tokens) == ("chat", 2, 90)
    assert measured.stats(since=NOW + 100) == []


# -- concurrency ---------------------------------------------------------------------------


def test_reader_is_not_blocked_by_an_open_write(db_path: Path) -> None:
    writer = TraceStore.open(db_path)
    reader = TraceStore.open(db_path)
    writer.write(trace(1))
    writer._db.execute("BEGIN IMMEDIATE")
    writer._db["requests"].insert(
        {"trace_id": tid(2), "span_id": sid(2), "started_at": NOW, "trace_started_at": NOW}
    )
    assert reader.count() == 1  # the uncommitted row is invisible, and reading did not wait
    assert ids(reader.list_traces()) == [1]
    writer._db.execute("COMMIT")
    assert reader.count() == 2
    writer.close()
    reader.close()


def test_writer_thread_and_reader_at_once(db_path: Path) -> None:
    writer = TraceStore.open(db_path)
    errors: list[BaseException] = []

    def write_all() -> None:
        try:
            for i in range(200):
                writer.write(trace(i))
        except BaseException as exc:
            errors.append(exc)

    with TraceStore.open(db_path) as reader:
        thread = threading.Thread(target=write_all)
        thread.start()
        seen = []
        while thread.is_alive() or not seen or seen[-1] < 200:
            seen.append(reader.count())
            for row in reader.list_traces(limit=5):
                detail = reader.get_trace(row.trace_id)
                assert detail is not None
                assert len(detail.spans) == 2  # a batch is seen whole or not at all
        thread.join()
    writer.close()
    assert errors == []
    assert seen == sorted(seen)
    assert seen[-1] == 200


def test_read_only_open_reads_while_a_writer_writes_and_never_writes(db_path: Path) -> None:
    with TraceStore.open(db_path) as writer:
        writer.write(StoreBatch(requests=[req(1, NOW)]))
        with TraceStore.open(db_path, read_only=True) as reader:
            assert [r.trace_id for r in reader.list_traces()] == [tid(1)]
            writer.write(StoreBatch(requests=[req(2, NOW + 1)]))
            assert reader.count() == 2
            assert reader.get_trace(tid(2)) is not None
            with pytest.raises(TraceStoreError, match="read-only"):
                reader.write(StoreBatch(requests=[req(3, NOW)]))
            with pytest.raises(TraceStoreError, match="read-only"):
                reader.prune()


def test_read_only_open_creates_nothing_and_refuses_a_non_store(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(TraceStoreError, match="cannot open"):
        TraceStore.open(missing, read_only=True)
    assert not missing.exists()
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(TraceStoreError, match="not a trace store"):
        TraceStore.open(other, read_only=True)


def test_readers_do_not_load_sqlite_utils_or_numpy(db_path: Path) -> None:
    with TraceStore.open(db_path) as writer:
        writer.write(StoreBatch(requests=[req(1, NOW)]))
    code = (
        "import sys\n"
        "from proxy.telemetry.store import TraceStore\n"
        f"store = TraceStore.open({str(db_path)!r}, read_only=True)\n"
        "assert len(store.list_traces()) == 1\n"
        "print(sorted(m for m in ('sqlite_utils', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"
