"""The trace store's filter terms (`filter=`, `decision=`) and the blocks on each listed
trace, over real SQLite files, from plano(filter) spans as the gateway writes them."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from filter_seed import (
    T_AGENT_FILTERED,
    T_BLOCKED,
    T_FAILED_OPEN,
    T_OBSERVED,
    FilterCall,
    filter_runs,
    filtered_call,
)
from trace_seed import T_CODE, seed

from proxy.telemetry import store_query, store_schema
from proxy.telemetry.store import TraceStore

NOW = time.time()


@pytest.fixture
def store(tmp_path: Path):
    seed(tmp_path / "traces.db", NOW)  # traces without filters, which no filter term matches
    with TraceStore.open(tmp_path / "traces.db") as opened:
        for batch in filter_runs(NOW):
            opened.write(batch)
        yield opened


def listed(store: TraceStore, **where: str) -> list[str]:
    return [row.trace_id for row in store.list_traces(where=where)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"filter": "pii"}, [T_BLOCKED, T_OBSERVED, T_AGENT_FILTERED]),
        ({"filter": "injection"}, [T_BLOCKED, T_OBSERVED]),
        ({"filter": "guard"}, [T_OBSERVED, T_FAILED_OPEN]),
        ({"filter": "nope"}, []),
        # Observe mode counts: T_OBSERVED's injection would have blocked.
        ({"decision": "block"}, [T_BLOCKED, T_OBSERVED, T_AGENT_FILTERED]),
        ({"decision": "modify"}, [T_OBSERVED]),
        ({"decision": "error"}, [T_FAILED_OPEN]),
        ({"decision": "pass"}, [T_BLOCKED, T_OBSERVED]),
        # Both terms hold for the same filter call: in T_BLOCKED pii passed and injection
        # blocked, so it is no "pii blocked" trace.
        ({"filter": "pii", "decision": "block"}, [T_AGENT_FILTERED]),
        ({"filter": "injection", "decision": "block"}, [T_BLOCKED, T_OBSERVED]),
        ({"filter": "injection", "decision": "pass"}, []),
        ({"filter": "guard", "decision": "error"}, [T_FAILED_OPEN]),
        # With the call's own fields, as agent= combines.
        ({"filter": "pii", "listener": "travel"}, [T_AGENT_FILTERED]),
        ({"decision": "block", "status": "403"}, [T_BLOCKED]),
        ({"decision": "block", "status": "200"}, [T_OBSERVED]),
    ],
)
def test_filter_terms_list_the_traces_with_such_a_filter_call(store, where, expected):
    assert listed(store, **where) == expected


def test_the_terms_are_about_one_call_of_the_trace(store):
    # A trace of two calls: the first (listener llm) ran no filter, the second (listener
    # edge) had pii block.
    first = filtered_call(T_CODE[:-4] + "beef", NOW - 5, [], listener="llm")
    second = filtered_call(
        T_CODE[:-4] + "beef",
        NOW - 4,
        [FilterCall("pii", "pii", "block", 0.3, status=400, message="an email")],
        status=400,
        listener="edge",
    )
    # Calls of one trace are keyed by their own root span.
    second.requests[0].span_id = "5ec0" + "0" * 12
    for span in second.spans:
        span.span_id = "5ec" + span.span_id[3:]
        if span.parent_id is not None:
            span.parent_id = "5ec0" + "0" * 12
    store.write(first)
    store.write(second)
    trace = T_CODE[:-4] + "beef"
    assert trace in listed(store, filter="pii", listener="edge")
    assert trace not in listed(store, filter="pii", listener="llm")


def test_a_bad_decision_names_the_valid_ones(store):
    with pytest.raises(ValueError, match="decision must be one of pass, modify, block, error"):
        store.list_traces(where={"decision": "blocked"})


def test_listed_traces_say_which_filter_blocked_or_would_have(store):
    rows = {row.trace_id: row for row in store.list_traces()}
    assert rows[T_BLOCKED].blocked_by == ["injection"]
    assert rows[T_BLOCKED].would_block == []
    assert rows[T_OBSERVED].blocked_by == []
    assert rows[T_OBSERVED].would_block == ["injection"]
    assert rows[T_AGENT_FILTERED].blocked_by == ["pii"]
    assert rows[T_FAILED_OPEN].blocked_by == rows[T_FAILED_OPEN].would_block == []
    assert rows[T_CODE].blocked_by == []
    detail = store.get_trace(T_BLOCKED)
    assert detail is not None
    assert detail.summary is not None
    assert detail.summary.blocked_by == ["injection"]


def test_stats_count_the_calls_a_filter_blocked(store):
    groups = store.stats(where={"decision": "block"})
    assert sum(g.count for g in groups) == 3
    assert sum(g.errors for g in groups) == 2  # the observed one went through


def test_a_filter_term_probes_the_filter_index_and_reads_no_span_json(store):
    f = store_query.trace_filter(where={"filter": "pii", "decision": "block"})
    sql, params = store_query.trace_keys_sql(f, before=None, limit=10)
    plan = " ".join(r[-1] for r in store._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "USING INDEX idx_spans_filter_calls" in plan
    assert "SCAN spans" not in plan
    assert "TEMP B-TREE" not in plan  # the calls are walked in trace order, as for model=


def test_a_v2_store_gets_the_filter_index_and_keeps_its_spans(tmp_path: Path, monkeypatch):
    path = tmp_path / "traces.db"
    monkeypatch.setattr(store_schema, "MIGRATIONS", store_schema.MIGRATIONS[:2])
    monkeypatch.setattr(store_schema, "SCHEMA_VERSION", 2)
    with TraceStore.open(path) as old:
        for batch in filter_runs(NOW):
            old.write(batch)
    monkeypatch.undo()
    with sqlite3.connect(path) as conn:
        assert not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'idx_spans_filter_calls'"
        ).fetchall()
    with TraceStore.open(path) as migrated:
        assert listed(migrated, filter="pii", decision="block") == [T_AGENT_FILTERED]
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        assert version == (str(store_schema.SCHEMA_VERSION),)
        # The partial index holds the filter spans only.
        count = conn.execute(
            "SELECT count(*) FROM spans INDEXED BY idx_spans_filter_calls"
            " WHERE name = 'plano(filter)'"
        ).fetchone()[0]
        assert count == 7


def test_a_filter_step_from_the_gateway_is_found_by_its_id_and_decision(tmp_path: Path):
    # The path a request takes: a StepRecord of kind "filter" -> plano(filter) span ->
    # store rows. Its name is the filter id (spans._STEP_NAME_KEYS), the index finds it.
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from proxy.filters import verdict as v
    from proxy.telemetry.analysis import analyze_record
    from proxy.telemetry.record import StepRecord, TelemetryRecord
    from proxy.telemetry.span_rows import store_batch
    from proxy.telemetry.spans import build_spans

    start = int(NOW * 1e9)
    record = TelemetryRecord(
        trace_id="ab" * 16,
        span_id="cd" * 8,
        sampled=True,
        start_ns=start,
        end_ns=start + 5_000_000,
        request_id="req-1",
        listener="llm",
        api="openai_chat",
        path="/v1/chat/completions",
        status=403,
        error="blocked by filter 'policy'",
    )
    record.steps.append(
        StepRecord(
            "filter",
            "policy",
            "ef" * 8,
            start + 1_000_000,
            start + 1_200_000,
            attributes={
                v.ATTR_KIND: "content_policy",
                v.ATTR_DIRECTION: "input",
                v.ATTR_DECISION: "block",
                v.ATTR_MODE: "enforce",
                v.ATTR_MESSAGE: "This request is not allowed by policy.",
            },
        )
    )
    analysis = analyze_record(record, signals=False, capture=False)
    spans = build_spans(record, analysis, Resource.create({}), InstrumentationScope("t"))
    (step,) = [s for s in spans if s.name == "plano(filter)"]
    assert step.attributes is not None
    assert step.attributes[v.ATTR_ID] == "policy"
    with TraceStore.open(tmp_path / "traces.db") as store:
        store.write(store_batch([(record, analysis, spans)]))
        assert listed(store, filter="policy", decision="block") == [record.trace_id]
        (row,) = store.list_traces()
        assert row.blocked_by == ["policy"]
