"""Many calls in one trace (an agent's run): every call kept, the trace adds them up, and
the filters, pages and stats agree on what a trace of several calls is. The migration
from the store that kept one row per trace.

Every test runs on a real SQLite file under tmp_path.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlite_utils.db import PrimaryKeyRequired

from proxy.telemetry import store_schema, store_traces
from proxy.telemetry.store import (
    RequestRow,
    SignalRow,
    SpanRow,
    StoreBatch,
    TraceRow,
    TraceStore,
)

NOW = 1_750_000_000.0
AGENT = "a" * 32  # the agent's trace
OTHER = "b" * 32


def call(n: int, started_at: float, trace_id: str = AGENT, **fields: object) -> RequestRow:
    """Call n of a trace: its own root span."""
    return RequestRow(trace_id=trace_id, started_at=started_at, span_id=f"{n:016x}", **fields)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"


@pytest.fixture
def store(db_path: Path):
    with TraceStore.open(db_path) as opened:
        yield opened


def only(store: TraceStore, trace_id: str = AGENT) -> TraceRow:
    (row,) = [r for r in store.list_traces(limit=1000) if r.trace_id == trace_id]
    return row


# -- every call is kept --------------------------------------------------------------------


def test_five_calls_of_one_trace_are_five_rows_and_one_trace(store: TraceStore) -> None:
    # The defect: five calls under one traceparent overwrote one another (one row, the
    # tokens and latency of one call).
    for n in range(5):
        store.write(
            StoreBatch(
                requests=[
                    call(
                        n,
                        NOW + n,
                        model="openai/gpt-4o",
                        status=200,
                        outcome="ok",
                        latency_ms=500.0,
                        ttft_ms=100.0 + n,
                        input_tokens=7,
                        output_tokens=3,
                        cost_usd=0.001,
                    )
                ]
            )
        )
    assert store.count() == 5
    assert store.count_traces() == 1
    (row,) = store.list_traces()
    assert (row.calls, row.input_tokens, row.output_tokens) == (5, 35, 15)
    assert row.cost_usd == pytest.approx(0.005)
    assert row.latency_ms == pytest.approx(4500.0)  # first start to last end
    assert row.ttft_ms == 100.0  # the first call's
    assert (row.model, row.models, row.status, row.outcome) == ("openai/gpt-4o", 1, 200, "ok")
    detail = store.get_trace(AGENT)
    assert detail is not None
    assert [c.span_id for c in detail.calls] == [f"{n:016x}" for n in range(5)]
    assert detail.summary == row


def test_concurrent_writers_in_separate_batches_keep_every_call(db_path: Path) -> None:
    # Four writers (each its own connection, as two processes would be), calls of two
    # traces in random order and batches: nothing overwritten, sums right, and every call
    # carries its trace's first start, whichever call was written first.
    TraceStore.open(db_path).close()
    rng = random.Random(3)
    calls = [
        call(
            n,
            NOW + rng.uniform(0, 60),
            trace_id=AGENT if n % 3 else OTHER,
            model=rng.choice(["openai/gpt-4o", "anthropic/claude"]),
            status=rng.choice([200, 200, 502]),
            latency_ms=rng.uniform(10, 2000),
            input_tokens=n,
            output_tokens=2 * n,
            cost_usd=n / 1000,
        )
        for n in range(120)
    ]
    rng.shuffle(calls)
    batches, i = [], 0
    while i < len(calls):
        size = rng.randint(1, 7)
        batches.append(calls[i : i + size])
        i += size
    errors: list[BaseException] = []

    def write(mine: list[list[RequestRow]]) -> None:
        try:
            with TraceStore.open(db_path) as writer:
                for batch in mine:
                    writer.write(StoreBatch(requests=batch))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(batches[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    written = [c for batch in batches for c in batch]
    with TraceStore.open(db_path, read_only=True) as reader:
        assert reader.count() == len(written)
        for trace_id in (AGENT, OTHER):
            mine = [c for c in written if c.trace_id == trace_id]
            row = only(reader, trace_id)
            first = min(c.started_at for c in mine)
            assert row.calls == len(mine)
            assert row.started_at == first
            assert row.input_tokens == sum(c.input_tokens or 0 for c in mine)
            assert row.output_tokens == sum(c.output_tokens or 0 for c in mine)
            assert row.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in mine))
            end = max(c.started_at + (c.latency_ms or 0) / 1000 for c in mine)
            assert row.latency_ms == pytest.approx((end - first) * 1000)
            assert row.status == 502
            assert (row.models, row.model) == (2, None)
            detail = reader.get_trace(trace_id)
            assert detail is not None
            assert {c.trace_started_at for c in detail.calls} == {first}


def test_a_call_sent_again_replaces_itself(store: TraceStore) -> None:
    store.write(StoreBatch(requests=[call(1, NOW, input_tokens=5), call(2, NOW + 1)]))
    store.write(StoreBatch(requests=[call(1, NOW, input_tokens=6)]))
    assert store.count() == 2
    assert only(store).input_tokens == 6


def test_an_earlier_call_written_later_moves_the_trace_start(store: TraceStore) -> None:
    store.write(StoreBatch(requests=[call(2, NOW + 10, latency_ms=100.0)]))
    store.write(StoreBatch(requests=[call(1, NOW, latency_ms=100.0)]))
    row = only(store)
    assert (row.started_at, row.latency_ms) == (NOW, pytest.approx(10_100.0))
    # The keyset cursor and the filters walk the calls by their trace's start.
    assert store.list_traces(before=(NOW + 5, "")) == [row]
    assert store.list_traces(since=NOW + 5) == []
    detail = store.get_trace(AGENT)
    assert detail is not None
    assert [c.trace_started_at for c in detail.calls] == [NOW, NOW]


def test_a_call_without_its_root_span_is_refused(store: TraceStore) -> None:
    with pytest.raises(PrimaryKeyRequired, match="requests row without span_id"):
        store.write(StoreBatch(requests=[RequestRow(trace_id=AGENT, started_at=NOW)]))
    assert store.count() == 0


# -- what a trace of several calls shows ---------------------------------------------------


def test_summary_takes_the_worst_and_the_first(store: TraceStore) -> None:
    store.write(
        StoreBatch(
            requests=[
                call(1, NOW, model="m1", route="code", status=200, outcome="ok", ttft_ms=9.0),
                call(
                    2,
                    NOW + 1,
                    model="m2",
                    route="code",
                    status=200,
                    outcome="stream_error",
                    error="upstream reset",
                ),
                call(
                    3,
                    NOW + 2,
                    model="m1",
                    route="chat",
                    status=429,
                    outcome="error",
                    error="rate limited",
                    signal_quality="poor",
                    signal_score=30,
                ),
                call(
                    4,
                    NOW + 3,
                    model="m1",
                    status=200,
                    outcome="ok",
                    signal_quality="good",
                    signal_score=70,
                    signal_count=1,
                ),
            ],
            signals=[SignalRow(AGENT, "gratitude"), SignalRow(AGENT, "correction")],
        )
    )
    row = only(store)
    assert row.status == 429  # the worst status a call got
    assert row.outcome == "stream_error"  # a failure the status hides outranks an error
    assert row.error == "upstream reset"  # the first failed call's
    assert (row.model, row.models, row.route, row.routes) == (None, 2, None, 2)
    assert row.ttft_ms == 9.0
    assert (row.signal_quality, row.signal_score, row.signal_count) == ("poor", 30, 2)


# -- filters: a call term matches a trace with such a call -------------------------------


@pytest.fixture
def agents(store: TraceStore) -> TraceStore:
    """Three traces: an agent run of four calls, a plain request, an agent run of two."""
    store.write(
        StoreBatch(
            requests=[
                call(1, NOW, model="gpt", status=200, outcome="ok", latency_ms=100.0),
                call(
                    2,
                    NOW + 1,
                    model="claude",
                    status=502,
                    outcome="error",
                    latency_ms=50.0,
                    error="upstream 502",
                ),
                call(
                    3,
                    NOW + 2,
                    model="gpt",
                    status=200,
                    outcome="stream_error",
                    latency_ms=300.0,
                    request_messages=[{"role": "user", "content": "ping"}],
                ),
                call(
                    4,
                    NOW + 3,
                    model="gpt",
                    status=200,
                    outcome="ok",
                    latency_ms=100.0,
                    signal_count=1,
                ),
                call(
                    5,
                    NOW + 10,
                    trace_id=OTHER,
                    model="claude",
                    status=200,
                    outcome="ok",
                    latency_ms=4000.0,
                ),
                call(
                    6,
                    NOW + 20,
                    trace_id="c" * 32,
                    model="gpt",
                    status=502,
                    outcome="error",
                    latency_ms=10.0,
                ),
                call(
                    7,
                    NOW + 21,
                    trace_id="c" * 32,
                    model="claude",
                    status=200,
                    outcome="ok",
                    latency_ms=10.0,
                ),
            ]
        )
    )
    return store


A, B, C = AGENT, OTHER, "c" * 32


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [C, B, A]),
        ({"where": {"model": "claude"}}, [C, B, A]),  # any call to it
        ({"where": {"status": "502"}}, [C, A]),  # any call with it
        ({"where": {"status": "200"}}, [C, B, A]),
        ({"where": {"outcome": "stream_error"}}, [A]),
        ({"where": {"outcome": "ok"}}, [C, B, A]),
        # Terms on calls hold together, on one call: a call to claude that got a 502.
        ({"where": {"model": "claude", "status": "502"}}, [A]),
        ({"where": {"model": "gpt", "status": "502"}}, [C]),
        ({"where": {"model": "claude", "outcome": "stream_error"}}, []),
        ({"text": "ping"}, [A]),
        ({"text": "upstream 502"}, [A]),
        ({"text": "ping", "where": {"model": "claude"}}, []),
        # Terms on the trace: its latency (first start to last end), its signals, its start.
        ({"min_latency_ms": 3300}, [B]),
        ({"min_latency_ms": 3100}, [B, A]),
        ({"min_latency_ms": 3100, "where": {"model": "claude"}}, [B, A]),
        ({"min_latency_ms": 3100, "where": {"status": "502"}}, [A]),
        ({"has_signals": True}, [A]),
        ({"has_signals": False}, [C, B]),
        ({"has_signals": True, "where": {"model": "claude"}}, [A]),
        ({"since": NOW + 1}, [C, B]),  # A started before, though three of its calls did not
        ({"until": NOW + 15, "where": {"model": "claude"}}, [B, A]),
    ],
)
def test_filters_on_traces_of_several_calls(
    agents: TraceStore, kwargs: dict, expected: list[str]
) -> None:
    found = agents.list_traces(**kwargs)
    assert [r.trace_id for r in found] == expected
    # A matching trace is shown whole: all its calls, not only the matching ones.
    assert all(r.calls == only(agents, r.trace_id).calls for r in found)


def test_stats_count_the_matching_calls_of_the_matching_traces(agents: TraceStore) -> None:
    by_model = {g.key: g for g in agents.stats(group_by="model")}
    assert (by_model["gpt"].count, by_model["claude"].count) == (4, 3)
    # Errors: any call that did not end ok, a failed stream included.
    assert (by_model["gpt"].errors, by_model["claude"].errors) == (2, 1)
    (claude,) = agents.stats(where={"model": "claude"})
    assert claude.count == 3
    # A trace term keeps every call of the traces it matches.
    by_model = {g.key: g for g in agents.stats(min_latency_ms=3100)}
    assert (by_model["gpt"].count, by_model["claude"].count) == (3, 2)
    (failed,) = agents.stats(where={"outcome": "stream_error"})
    assert (failed.key, failed.count, failed.errors) == ("gpt", 1, 1)


def test_keyset_pages_of_several_call_traces(store: TraceStore) -> None:
    # 30 traces of 1 to 4 calls, some sharing a start: every trace once, in order.
    rng = random.Random(9)
    calls = []
    for t in range(30):
        start = NOW + t // 3
        for n in range(rng.randint(1, 4)):
            calls.append(call(100 * t + n, start + n, trace_id=f"{t:032x}", model="gpt"))
    rng.shuffle(calls)
    for i in range(0, len(calls), 5):
        store.write(StoreBatch(requests=calls[i : i + 5]))
    for where in ({}, {"model": "gpt"}):
        pages: list[TraceRow] = []
        cursor = None
        while page := store.list_traces(where=where, limit=4, before=cursor):
            pages += page
            cursor = (page[-1].started_at, page[-1].trace_id)
        keys = [(r.started_at, r.trace_id) for r in pages]
        assert len(keys) == len(set(keys)) == 30
        assert keys == sorted(keys, reverse=True)
        assert sum(r.calls for r in pages) == len(calls)


def test_live_reads_of_a_few_traces(agents: TraceStore) -> None:
    assert [r.trace_id for r in agents.list_traces(trace_ids=[A, C])] == [C, A]
    assert agents.list_traces(trace_ids=[A, B], where={"status": "502"}) == [only(agents, A)]


def test_prune_takes_whole_traces(db_path: Path) -> None:
    with TraceStore.open(db_path, max_requests=2) as opened:
        for t in range(4):  # 4 traces of 3 calls
            opened.write(
                StoreBatch(
                    requests=[call(10 * t + n, NOW + t, trace_id=f"{t:032x}") for n in range(3)],
                    spans=[SpanRow(f"{t:015x}f", f"{t:032x}", "plano(inbound)", 1)],
                )
            )
        assert opened.prune(now=NOW) == 6  # two traces, three calls each
        assert [r.calls for r in opened.list_traces()] == [3, 3]
        assert opened.count_traces() == 2
        opened.write(StoreBatch(requests=[call(99, NOW + 9, trace_id=f"{9:032x}")]))
        assert opened.prune(now=NOW) == 3  # the count it keeps includes the new trace
    with sqlite3.connect(db_path) as conn:
        left = {t for (t,) in conn.execute("SELECT DISTINCT trace_id FROM spans")}
    assert left == {f"{3:032x}"}


# -- the summary's arithmetic --------------------------------------------------------------

calls_strategy = st.lists(
    st.tuples(
        st.floats(0, 1000, allow_nan=False),  # start offset, s
        st.one_of(st.none(), st.floats(0, 100_000, allow_nan=False)),  # latency, ms
        st.sampled_from([None, 200, 429, 499, 502]),
        st.sampled_from([None, "ok", "error", "stream_error", "client_disconnect", "shutdown"]),
        st.one_of(st.none(), st.integers(0, 10_000)),  # tokens
        st.sampled_from([None, "m1", "m2"]),
    ),
    min_size=1,
    max_size=6,
)


@given(calls_strategy)
def test_summary_adds_up_any_calls(specs: list) -> None:
    rows = [
        call(n, NOW + off, latency_ms=lat, status=status, outcome=outcome,
             input_tokens=tokens, model=model)
        for n, (off, lat, status, outcome, tokens, model) in enumerate(specs)
    ]  # fmt: skip
    row = store_traces.summarize([store_traces.call_values(r) for r in reversed(rows)])
    assert row.calls == len(rows)
    assert row.started_at == min(r.started_at for r in rows)
    tokens = [r.input_tokens for r in rows if r.input_tokens is not None]
    assert row.input_tokens == (sum(tokens) if tokens else None)
    statuses = [r.status for r in rows if r.status is not None]
    assert row.status == (max(statuses) if statuses else None)
    models = {r.model for r in rows if r.model is not None}
    assert row.models == len(models)
    assert row.model == (models.pop() if len(models) == 1 else None)
    outcomes = [r.outcome for r in rows if r.outcome is not None]
    if outcomes:
        assert store_traces.OUTCOME_RANK[row.outcome] == max(
            store_traces.OUTCOME_RANK[o] for o in outcomes
        )
    ends = [
        (r.started_at - row.started_at) * 1000 + r.latency_ms
        for r in rows
        if r.latency_ms is not None
    ]
    assert row.latency_ms == (max(ends) if ends else None)
    if len(rows) == 1:
        assert row.latency_ms == rows[0].latency_ms  # a call alone is its own trace


@given(
    calls_strategy,
    st.sampled_from([None, "code", "chat"]),
    st.sampled_from([None, "", "timeout"]),
    st.sampled_from([None, "upstream reset", ""]),
    st.sampled_from([None, 0, 3]),
    st.integers(0, 4),
    st.booleans(),
)
def test_the_fast_path_for_one_call_is_the_general_one(
    specs: list, route, fallback, error, signal_count, stored, stream
) -> None:
    off, lat, status, outcome, tokens, model = specs[0]
    row = call(
        0,
        NOW + off,
        latency_ms=lat,
        status=status,
        outcome=outcome,
        input_tokens=tokens,
        cost_usd=None if tokens is None else tokens / 1e6,
        model=model,
        route=route,
        routing_fallback=fallback,
        error=error,
        signal_count=signal_count,
        stream=stream,
    )
    values = store_traces.call_values(row)
    assert store_traces.one_call(values, stored) == store_traces.many_calls([values], stored)


@given(st.lists(calls_strategy, min_size=1, max_size=5), st.floats(0, 200_000))
def test_min_latency_keeps_what_the_list_shows(
    tmp_path_factory: pytest.TempPathFactory, traces: list, threshold: float
) -> None:
    # The filter is SQL, the listed latency Python: they must agree, to the last bit.
    path = tmp_path_factory.mktemp("latency") / "traces.db"
    with TraceStore.open(path) as store:
        batch = StoreBatch()
        for t, specs in enumerate(traces):
            for n, (off, lat, *_rest) in enumerate(specs):
                batch.requests.append(
                    call(
                        100 * t + n,
                        NOW + off,
                        trace_id=f"{t:032x}",
                        latency_ms=lat,
                        api="openai_chat",
                    )
                )
        store.write(batch)
        every = store.list_traces(limit=100)
        kept = store.list_traces(min_latency_ms=threshold, limit=100)
        expected = [r for r in every if r.latency_ms is not None and r.latency_ms >= threshold]
        assert kept == expected
        for latency in {r.latency_ms for r in every if r.latency_ms is not None}:
            assert store.list_traces(min_latency_ms=latency, limit=100) == [
                r for r in every if r.latency_ms is not None and r.latency_ms >= latency
            ]
            # With a call term (every call has it), the filter takes its other form.
            assert store.list_traces(
                min_latency_ms=latency, where={"api": "openai_chat"}, limit=100
            ) == store.list_traces(min_latency_ms=latency, limit=100)


# -- the migration from one row per trace --------------------------------------------------

# The schema Plano wrote before calls had keys (schema_version 1), as sqlite-utils made it.
V1_DDL = """
CREATE TABLE "meta" ("key" TEXT PRIMARY KEY, "value" TEXT);
CREATE TABLE "requests" (
   "trace_id" TEXT PRIMARY KEY, "request_id" TEXT, "started_at" REAL NOT NULL,
   "listener" TEXT, "api" TEXT, "path" TEXT, "route" TEXT, "router_backend" TEXT,
   "routing_fallback" TEXT, "requested_model" TEXT, "model" TEXT, "provider" TEXT,
   "status" INTEGER, "error" TEXT, "latency_ms" REAL, "ttft_ms" REAL,
   "input_tokens" INTEGER, "output_tokens" INTEGER, "cached_tokens" INTEGER,
   "reasoning_tokens" INTEGER, "cost_usd" REAL, "stream" INTEGER, "signal_quality" TEXT,
   "signal_score" INTEGER, "signal_count" INTEGER, "session" TEXT,
   "request_messages" TEXT, "response_messages" TEXT
);
CREATE TABLE "spans" (
   "span_id" TEXT PRIMARY KEY, "trace_id" TEXT NOT NULL, "parent_id" TEXT, "name" TEXT,
   "kind" TEXT, "start_ns" INTEGER, "end_ns" INTEGER, "status_code" TEXT,
   "status_message" TEXT, "attributes" TEXT
);
CREATE TABLE "span_events" (
   "id" TEXT PRIMARY KEY, "span_id" TEXT, "trace_id" TEXT NOT NULL, "name" TEXT,
   "time_ns" INTEGER, "attributes" TEXT
);
CREATE TABLE "signals" (
   "id" TEXT PRIMARY KEY, "trace_id" TEXT NOT NULL, "type" TEXT, "group" TEXT,
   "message_index" INTEGER, "confidence" REAL, "snippet" TEXT
);
CREATE INDEX "idx_requests_started_at_trace_id" ON "requests" ("started_at", "trace_id");
CREATE INDEX "idx_requests_model_started_at_trace_id"
    ON "requests" ("model", "started_at", "trace_id");
CREATE INDEX "idx_requests_route_started_at_trace_id"
    ON "requests" ("route", "started_at", "trace_id");
CREATE INDEX "idx_requests_status_started_at_trace_id"
    ON "requests" ("status", "started_at", "trace_id");
CREATE INDEX "idx_spans_trace_id" ON "spans" ("trace_id");
CREATE INDEX "idx_span_events_trace_id" ON "span_events" ("trace_id");
CREATE INDEX "idx_signals_trace_id" ON "signals" ("trace_id");
CREATE INDEX "idx_spans_start_ns" ON "spans" ("start_ns");
INSERT INTO meta VALUES ('schema_version', '1');
"""


def test_a_store_of_one_row_per_trace_is_migrated_row_for_row(db_path: Path) -> None:
    ns = int(NOW * 1e9)
    with sqlite3.connect(db_path) as conn:
        conn.executescript(V1_DDL)
        v1_rows = [  # trace, start, model, status, error, tokens, messages
            (AGENT, NOW, "openai/gpt-4o", 200, None, 12, '[{"role": "user", "content": "hi"}]'),
            (OTHER, NOW + 5, "anthropic/claude", 200, "stream cut", 3, None),
            ("c" * 32, NOW + 9, "openai/gpt-4o", 502, "upstream 502", None, None),
            ("d" * 32, NOW + 12, None, None, None, None, None),
        ]
        conn.executemany(
            "INSERT INTO requests (trace_id, started_at, model, status, error, input_tokens,"
            " request_messages, latency_ms, stream) VALUES (?, ?, ?, ?, ?, ?, ?, 250.0, 1)",
            v1_rows,
        )
        # AGENT's two calls left two inbound spans; the row kept is the one nearest its start.
        conn.executemany(
            "INSERT INTO spans (span_id, trace_id, name, start_ns) VALUES (?, ?, ?, ?)",
            [
                ("00000000000000a1", AGENT, "plano(inbound)", ns),
                ("00000000000000a2", AGENT, "plano(inbound)", ns + 4_000_000_000),
                ("00000000000000a3", AGENT, "plano(llm)", ns + 1),
                ("00000000000000b1", OTHER, "plano(inbound)", ns + 5_000_000_000),
            ],
        )
    with TraceStore.open(db_path) as store:
        assert store.count() == 4
        listed = store.list_traces()
        assert [r.trace_id for r in listed] == ["d" * 32, "c" * 32, OTHER, AGENT]
        calls = {t: store.get_trace(t) for t in (AGENT, OTHER, "c" * 32, "d" * 32)}
        assert store.list_traces(where={"outcome": "stream_error"}) == [listed[2]]
    agent = calls[AGENT]
    assert agent is not None
    (kept,) = agent.calls
    assert (kept.span_id, kept.trace_started_at, kept.input_tokens) == (
        "00000000000000a1",
        NOW,
        12,
    )
    assert kept.request_messages == [{"role": "user", "content": "hi"}]
    assert (kept.stream, kept.latency_ms, kept.outcome) == (True, 250.0, "ok")
    # The outcome, as the gateway would have said it: a 2xx with an error is a failed
    # stream; no status at all is an error. A trace without spans keys its call by its id.
    outcomes = {t: d.calls[0].outcome for t, d in calls.items() if d is not None}
    assert outcomes == {
        AGENT: "ok",
        OTHER: "stream_error",
        "c" * 32: "error",
        "d" * 32: "error",
    }
    unspanned = calls["d" * 32]
    assert unspanned is not None
    assert unspanned.calls[0].span_id == "d" * 32
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT value FROM meta").fetchall() == [
            (str(store_schema.SCHEMA_VERSION),)
        ]
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "requests_v1" not in tables
