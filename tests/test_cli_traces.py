"""`plano traces list|show|stats|tail` through the CLI, on a real SQLite store in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import REPO
from trace_seed import (
    ANSWER,
    CLAUDE,
    GPT,
    MESSAGES,
    SCORES,
    T_AGENT,
    T_CHAIN,
    T_CHAIN_FALLBACK,
    T_CODE,
    T_FAIL,
    T_OLD,
    T_REASON,
    T_SPANS_ONLY,
    WEATHER_HANDOFF,
    chain_runs,
    seed,
    span_id,
)
from typer.testing import CliRunner

from plano_cli.app import app
from plano_cli.traces_cli import args, columns, fmt, keys, render_list
from plano_cli.traces_cli import tail as tail_mod
from proxy.telemetry.store import (
    RequestRow,
    SpanRow,
    StoreBatch,
    TraceStore,
)
from proxy.telemetry.store_query import DECISIONS, FILTER_KEYS, OUTCOMES


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *argv: str):
    return runner.invoke(app, ["traces", *argv])


@pytest.fixture
def now() -> float:
    return time.time()


@pytest.fixture
def db(tmp_path: Path, now: float) -> str:
    path = tmp_path / "traces.db"
    seed(path, now)
    return str(path)


def listed(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [r["trace_id"] for r in json.loads(result.stdout)["traces"]]


# -- list ----------------------------------------------------------------------------------


def test_list_prints_newest_first_with_the_key_columns(runner, db):
    result = invoke(runner, "list", "--db", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("TIME", "TRACE", "STATUS", "MODEL", "ROUTE", "LATENCY", "TTFT", "COST"):
        assert header in out
    assert out.index(T_CODE[:12]) < out.index(T_REASON[:12]) < out.index(T_FAIL[:12])
    assert "poor (2)" in out
    assert "(fallback)" in out  # the router failed on T_FAIL
    assert "850 ms" in out
    assert "5 traces, newest first" in out
    assert T_SPANS_ONLY[:12] not in out  # no summary yet: not a request in the list


def test_list_adds_up_an_agents_calls_and_marks_its_failed_stream(runner, db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out = invoke(runner, "list", "--db", db).stdout
    (line,) = [line for line in out.splitlines() if "agents" in line or "2 models" in line]
    assert T_AGENT[:12] in line
    # Three calls, two models, 1.80 s from the first start to the last end, the tokens
    # and cost of all three; its status 200, but one stream failed after it.
    for part in ("200!", " 3 ", "2 models", "1.80 s", "140→85", "$0.0017", "stream_error"):
        assert part in line, (part, line)
    (row,) = [r for r in json.loads(invoke(runner, "list", "--db", db, "--json").stdout)["traces"]
              if r["trace_id"] == T_AGENT]  # fmt: skip
    assert (row["calls"], row["input_tokens"], row["output_tokens"]) == (3, 140, 85)
    assert (row["status"], row["outcome"], row["models"], row["model"]) == (
        200,
        "stream_error",
        2,
        None,
    )
    assert row["latency_ms"] == pytest.approx(1800)
    assert row["ttft_ms"] == 300.0  # the first call's


def test_list_json_has_every_summary_field_but_no_messages(runner, db, now):
    result = invoke(runner, "list", "--db", db, "--json")
    doc = json.loads(result.stdout)
    assert set(doc) == {"traces", "more"}
    assert doc["more"] is False
    assert [r["trace_id"] for r in doc["traces"]] == [T_CODE, T_REASON, T_FAIL, T_AGENT, T_OLD]
    first = doc["traces"][0]
    assert "request_messages" not in first
    assert "response_messages" not in first
    assert (first["calls"], first["outcome"]) == (1, "ok")
    assert first["model"] == GPT
    assert first["route"] == "code"
    assert first["status"] == 200
    assert first["stream"] is True
    assert first["started_at"] == pytest.approx(now - 10)
    parsed = datetime.fromisoformat(first["started_at_iso"])
    assert parsed.utcoffset().total_seconds() == 0
    assert parsed.timestamp() == pytest.approx(now - 10, abs=0.001)


def test_list_limit_says_more_match(runner, db):
    result = invoke(runner, "list", "--db", db, "--limit", "2", "--json")
    doc = json.loads(result.stdout)
    assert [r["trace_id"] for r in doc["traces"]] == [T_CODE, T_REASON]
    assert doc["more"] is True
    text = invoke(runner, "list", "--db", db, "-n", "2")
    assert "more match" in text.stdout
    assert invoke(runner, "list", "--db", db, "--limit", "0").exit_code == 2


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("30s", [T_CODE]),
        ("90s", [T_CODE, T_REASON]),
        ("1h", [T_CODE, T_REASON, T_FAIL]),
        ("1h1m", [T_CODE, T_REASON, T_FAIL]),
        ("3h", [T_CODE, T_REASON, T_FAIL, T_AGENT]),
        ("4d", [T_CODE, T_REASON, T_FAIL, T_AGENT, T_OLD]),
    ],
)
def test_list_since_a_duration(runner, db, since, expected):
    assert listed(invoke(runner, "list", "--db", db, "--since", since, "--json")) == expected


def test_list_since_an_iso_time(runner, db, now):
    local = datetime.fromtimestamp(now - 90).isoformat()  # naive: read as local time
    assert listed(invoke(runner, "list", "--db", db, "--since", local, "--json")) == [
        T_CODE,
        T_REASON,
    ]
    utc = datetime.fromtimestamp(now - 90).astimezone().isoformat()
    assert len(listed(invoke(runner, "list", "--db", db, "--since", utc, "--json"))) == 2


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (["model=" + CLAUDE], [T_REASON, T_AGENT]),
        (["route=code"], [T_CODE, T_AGENT]),
        (["status=502"], [T_FAIL]),
        # A trace matches when one of its calls does: the agent's run called GPT once.
        (["model=" + GPT], [T_CODE, T_FAIL, T_AGENT, T_OLD]),
        (["provider=openai", "status=200"], [T_CODE, T_AGENT]),
        (["model=" + GPT, "route=code"], [T_CODE]),  # the terms hold on one call
        # status is what the client got; outcome how the call ended.
        (["status=200"], [T_CODE, T_REASON, T_AGENT]),
        (["outcome=stream_error"], [T_AGENT]),
        (["outcome=error"], [T_FAIL, T_OLD]),
        (["status=200", "outcome=ok"], [T_CODE, T_REASON, T_AGENT]),
        (["listener=agents"], [T_AGENT]),
        (["api=anthropic_messages"], [T_AGENT]),
        (["session=s-1"], [T_AGENT]),
        (["min_latency_ms=2000"], [T_REASON, T_FAIL]),
        (["has_signals=yes"], [T_CODE]),
        (["text=Rust function"], [T_CODE]),
        (["text=upstream timeout"], [T_FAIL]),  # the error is searched too
        (["model=nope"], []),
    ],
)
def test_list_where(runner, db, where, expected):
    argv = [item for w in where for item in ("--where", w)]
    assert listed(invoke(runner, "list", "--db", db, *argv, "--json")) == expected


def test_list_where_and_since_combine(runner, db):
    result = invoke(runner, "list", "--db", db, "-w", "route=code", "--since", "1h", "--json")
    assert listed(result) == [T_CODE]


def test_no_match_says_so(runner, db):
    result = invoke(runner, "list", "--db", db, "--where", "model=nope")
    assert result.exit_code == 0
    assert "no traces match with these --where filters" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--where", "color=red"], "unknown key 'color'; valid keys: api, listener, model"),
        (["--where", "model"], "--where expects key=value, not 'model'"),
        (["--where", "status=ok"], "--where status: expected an HTTP status"),
        (["--where", "outcome=failed"], "--where outcome: expected one of ok, error, stream_"),
        (["--where", "min_latency_ms=fast"], "expected a number of milliseconds"),
        (["--where", "has_signals=maybe"], "expected true or false"),
        (["-w", "model=a", "-w", "model=b"], "model is given twice"),
        (["--since", "yesterday"], "--since: expected a duration such as 45s"),
        (["--since", "30"], "--since: expected a duration"),
    ],
)
def test_usage_errors_exit_2_and_say_why(runner, db, argv, message):
    for command in ("list", "stats"):
        result = invoke(runner, command, "--db", db, *argv)
        assert result.exit_code == 2, result.output
        assert message in result.stderr
        assert f"usage: plano traces {command}" in result.stderr


def test_bad_key_error_lists_every_valid_key(runner, db):
    result = invoke(runner, "list", "--db", db, "--where", "colour=red")
    for key in (*FILTER_KEYS, "min_latency_ms", "has_signals", "text"):
        assert key in result.stderr


# -- show ----------------------------------------------------------------------------------


def test_show_prints_summary_spans_routing_signals_cost_and_messages(runner, db):
    result = invoke(runner, "show", T_CODE, "--db", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert T_CODE in out
    # summary
    assert f"auto → {GPT} (openai)" in out
    assert "code via embedded" in out
    assert "850 ms, first token after 120 ms" in out
    assert "100 in, 50 out" in out
    assert "$0.0004 (input $0.0001, output $0.0003)" in out
    assert "2 (1 failed)" in out
    assert "poor, score 35, 2 found" in out
    # the waterfall: a tree, durations, bars, the failed attempt, key attributes, events
    assert "├─ plano(routing)" in out
    assert "└─ plano(llm)" in out
    assert "█" in out
    assert "HTTP 503" in out
    assert "router.backend=embedded" in out
    assert "llm.outcome=ok" in out
    assert "event first_token" in out
    assert "signal.correction" not in out  # signal events are listed under Signals
    # routing
    assert "Routing" in out
    assert "code → openai/gpt-4o-mini" in out
    assert "0.810" in out
    assert "0.420" in out
    assert out.index("0.810") < out.index("0.420")
    # signals with snippets
    assert "correction" in out
    assert "no, I meant Rust" in out
    # messages, readable
    assert "Request messages" in out
    assert "[1] user" in out
    assert "Write a Rust function that parses a CSV line" in out
    assert "→ tool call run_tests" in out
    assert '{"crate": "csv"}' in out


def test_show_a_failed_request_with_a_router_fallback(runner, db):
    out = invoke(runner, "show", T_FAIL, "--db", db).stdout
    assert "502" in out
    assert "upstream timeout" in out
    assert "(none: no route matched)" in out
    assert "timeout" in out
    assert "not captured" in out  # no messages were stored for it


def test_show_prints_an_agent_listeners_chain_in_order(runner, db, now):
    with TraceStore.open(db) as store:
        for batch in chain_runs(now):
            store.write(batch)
    out = invoke(runner, "show", T_CHAIN, "--db", db).stdout
    chain = out[out.index("Chain") :]
    assert "plano_orchestrator (40 ms), routed" in chain
    assert "weather_agent → flight_agent" in chain or "weather_agent -> flight_agent" in chain
    assert chain.index("weather_agent  ok  320 ms") < chain.index("flight_agent  ok  1.25 s")
    assert f"handoff {WEATHER_HANDOFF}" in chain
    out = invoke(runner, "show", T_CHAIN_FALLBACK, "--db", db).stdout
    assert "fallback      timeout" in out
    assert "flight_agent  HTTP 500  90 ms" in out
    # A trace without an agent listener's call has no such section.
    assert "Chain" not in invoke(runner, "show", T_CODE, "--db", db).stdout


def test_show_json_has_everything(runner, db):
    result = invoke(runner, "show", T_CODE, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"trace_id", "summary", "calls", "spans", "filters", "signals"}
    assert doc["trace_id"] == T_CODE
    assert (doc["summary"]["calls"], doc["summary"]["cost_usd"]) == (1, 0.0004)
    (call,) = doc["calls"]
    assert call["number"] == 1
    assert call["span_id"] == span_id(T_CODE, 0)
    assert call["request_messages"] == MESSAGES
    assert call["response_messages"] == ANSWER
    assert call["cost_usd"] == 0.0004
    assert call["outcome"] == "ok"
    assert call["routing"] == {
        "route": "code",
        "backend": "embedded",
        "selected_model": GPT,
        "models": [GPT],
        "scores": SCORES,
        "fallback": None,
        "determination_ms": 12.0,
        "cached": False,
        "pinned": False,
        "escalated": None,
    }
    names = [(s["name"], s["depth"]) for s in doc["spans"]]
    assert names == [
        ("plano(inbound)", 0),
        ("plano(routing)", 1),
        ("plano(llm)", 1),
        ("plano(llm)", 1),
    ]
    root, _, failed, answered = doc["spans"]
    assert root["offset_ms"] == 0
    assert root["duration_ms"] == pytest.approx(850)
    assert failed["status_code"] == "error"
    assert failed["status_message"] == "HTTP 503"
    assert answered["events"][0]["name"] == "first_token"
    assert root["events"][0]["name"] == "signal.correction"
    assert answered["attributes"]["llm.usage.cost_usd"] == 0.0004
    assert doc["signals"][0] == {
        "type": "correction",
        "group": "misalignment",
        "message_index": 1,
        "confidence": 0.9,
        "snippet": "no, I meant Rust",
    }


def test_show_takes_a_unique_prefix(runner, db):
    result = invoke(runner, "show", T_CODE[:6], "--db", db, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trace_id"] == T_CODE
    upper = invoke(runner, "show", T_REASON[:8].upper(), "--db", db, "--json")
    assert json.loads(upper.stdout)["trace_id"] == T_REASON


def test_show_an_ambiguous_prefix_names_the_candidates(runner, db):
    result = invoke(runner, "show", "abcdef00", "--db", db)
    assert result.exit_code == 1
    assert "ambiguous" in result.stderr
    assert T_FAIL in result.stderr
    assert T_AGENT in result.stderr


def test_show_an_unknown_id_exits_1(runner, db):
    for given in ("deadbeef", "4bf", "not-hex-at-all"):  # 4bf: too short to be a prefix
        result = invoke(runner, "show", given, "--db", db)
        assert result.exit_code == 1, given
        assert f"no trace '{given}' in {db}" in result.stderr


def test_show_cuts_long_messages_unless_full(runner, tmp_path):
    path = tmp_path / "long.db"
    long_text = "word " * 1000 + "THE END"
    with TraceStore.open(path) as store:
        store.write(
            request(tid(1), time.time(), request_messages=[{"role": "user", "content": long_text}])
        )
    cut = invoke(runner, "show", tid(1), "--db", str(path))
    assert "more characters: --full or --json" in cut.stdout
    assert "THE END" not in cut.stdout
    whole = invoke(runner, "show", tid(1), "--db", str(path), "--full")
    assert "THE END" in whole.stdout
    assert "more characters" not in whole.stdout


def test_show_a_trace_with_spans_but_no_summary(runner, db):
    result = invoke(runner, "show", T_SPANS_ONLY[:8], "--db", db)
    assert result.exit_code == 0, result.output
    assert "no summary yet" in result.stdout
    assert "agent.plan" in result.stdout
    assert "agent.step=plan" in result.stdout
    doc = json.loads(invoke(runner, "show", T_SPANS_ONLY, "--db", db, "--json").stdout)
    assert doc["summary"] is None
    assert doc["calls"] == []
    assert doc["spans"][0]["duration_ms"] is None


def test_show_an_agents_run_lists_every_call(runner, db):
    out = invoke(runner, "show", T_AGENT, "--db", db).stdout
    assert "calls     3 (each under Calls)" in out
    assert f"2 models: {CLAUDE}, {GPT}" in out
    assert "200!" in out
    assert "stream_error (the stream failed after its status was sent)" in out
    assert "1.80 s, first token after 300 ms" in out
    assert "140 in, 85 out" in out
    assert "Calls (3)" in out
    (failed,) = [line for line in out.splitlines() if line.lstrip().startswith("2 ")]
    for part in ("+1.00 s", GPT, "200!", "stream_error", "300 ms", "30→5", "$0.0001"):
        assert part in failed, (part, failed)
    # The waterfall holds the three calls' spans; each call's messages and routing apart.
    assert out.count("plano(inbound)") == 3
    assert "Call 1 of 3" in out
    assert "Call 3 of 3" in out
    assert out.count("not captured") == 1  # said once for the three calls
    doc = json.loads(invoke(runner, "show", T_AGENT, "--db", db, "--json").stdout)
    assert [c["number"] for c in doc["calls"]] == [1, 2, 3]
    assert [c["outcome"] for c in doc["calls"]] == ["ok", "stream_error", "ok"]
    assert [c["routing"] is not None for c in doc["calls"]] == [True, False, True]
    assert doc["summary"]["calls"] == 3
    assert sum(c["input_tokens"] for c in doc["calls"]) == doc["summary"]["input_tokens"]


# -- stats ---------------------------------------------------------------------------------


def test_stats_prints_both_tables_by_default(runner, db):
    result = invoke(runner, "stats", "--db", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    # Calls, not traces: the agent's run counts three, its failed stream among the errors.
    assert "7 calls, 3 failed (42.9%)" in out
    assert "by model" in out
    assert "by route" in out
    assert "CALLS" in out
    assert "TTFT p95" in out
    assert "(none)" in out  # calls without a route
    assert "$0.0156" in out


def test_stats_json_by_model_and_route(runner, db):
    doc = json.loads(invoke(runner, "stats", "--db", db, "--json").stdout)
    assert set(doc) == {"by_model", "by_route", "total"}
    by_model = {g["key"]: g for g in doc["by_model"]}
    assert set(by_model) == {GPT, CLAUDE}
    gpt = by_model[GPT]
    assert gpt["count"] == 4
    assert gpt["errors"] == 3  # the 502, the 429 and the stream that failed after its 200
    assert gpt["error_rate"] == pytest.approx(3 / 4)
    assert gpt["p50_latency_ms"] == pytest.approx(575)  # each call's own: 5, 300, 850, 30000
    assert gpt["p50_ttft_ms"] == pytest.approx(105)
    assert set(gpt) == {
        "key",
        "count",
        "errors",
        "error_rate",
        "p50_latency_ms",
        "p95_latency_ms",
        "p50_ttft_ms",
        "p95_ttft_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    }
    by_route = {g["key"]: g["count"] for g in doc["by_route"]}
    assert by_route == {"code": 3, "reasoning": 1, None: 3}
    assert doc["total"] == {
        "count": 7,
        "errors": 3,
        "error_rate": pytest.approx(3 / 7),
        "input_tokens": 740,
        "output_tokens": 935,
        "cost_usd": pytest.approx(0.0156),
    }


def test_stats_by_one_grouping_with_filters(runner, db):
    doc = json.loads(
        invoke(runner, "stats", "--db", db, "--by", "route", "--since", "1h", "--json").stdout
    )
    assert set(doc) == {"by_route", "total"}
    assert doc["total"]["count"] == 3
    doc = json.loads(
        invoke(runner, "stats", "--db", db, "--by", "model", "-w", "route=code", "--json").stdout
    )
    assert [(g["key"], g["count"]) for g in doc["by_model"]] == [(CLAUDE, 2), (GPT, 1)]
    assert invoke(runner, "stats", "--db", db, "--by", "color").exit_code == 2


def test_stats_with_trace_filters_count_every_call_of_the_matching_traces(runner, db):
    """min_latency_ms and has_signals are about a trace; text and the keys about a call."""
    slow = json.loads(
        invoke(runner, "stats", "--db", db, "-w", "min_latency_ms=1000", "--json").stdout
    )
    # T_REASON, T_FAIL and the agent's run (1.80 s, whose calls took 900, 300, 400 ms).
    assert slow["total"]["count"] == 5
    assert {g["key"]: g["count"] for g in slow["by_model"]} == {CLAUDE: 3, GPT: 2}
    failed = json.loads(
        invoke(runner, "stats", "--db", db, "-w", "outcome=stream_error", "--json").stdout
    )
    assert [(g["key"], g["count"], g["errors"]) for g in failed["by_model"]] == [(GPT, 1, 1)]
    # A filter that keeps everything gives what TraceStore.stats gives.
    everything = json.loads(
        invoke(runner, "stats", "--db", db, "-w", "min_latency_ms=0", "--json").stdout
    )
    assert everything == json.loads(invoke(runner, "stats", "--db", db, "--json").stdout)
    signalled = json.loads(
        invoke(runner, "stats", "--db", db, "-w", "has_signals=true", "--json").stdout
    )
    assert signalled["total"]["count"] == 1


def test_stats_limit_keeps_the_busiest_and_the_totals(runner, db):
    doc = json.loads(invoke(runner, "stats", "--db", db, "--limit", "1", "--json").stdout)
    assert [g["key"] for g in doc["by_model"]] == [GPT]
    assert [g["key"] for g in doc["by_route"]] == ["code"]
    assert doc["total"]["count"] == 7
    text = invoke(runner, "stats", "--db", db, "-n", "1").stdout
    assert "1 smaller models not shown" in text
    assert "2 smaller routes not shown" in text


def test_stats_matching_nothing(runner, db):
    result = invoke(runner, "stats", "--db", db, "--since", "1s", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["total"]["count"] == 0


# -- no store, empty store, a bare `plano traces` ------------------------------------------


def test_a_bare_traces_lists(runner, db, monkeypatch, tmp_path):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))  # where the seeded traces.db is
    result = runner.invoke(app, ["traces"])
    assert result.exit_code == 0, result.output
    assert T_CODE[:12] in result.stdout
    assert "TRACE" in result.stdout


def test_empty_store_says_what_to_do(runner, tmp_path):
    path = tmp_path / "empty.db"
    TraceStore.open(path).close()
    for command in ("list", "stats"):
        result = invoke(runner, command, "--db", str(path))
        assert result.exit_code == 0, result.output
        assert "no traces yet: start the gateway with `plano up`" in result.stdout
    as_json = invoke(runner, "list", "--db", str(path), "--json")
    assert json.loads(as_json.stdout) == {"traces": [], "more": False}
    assert "no traces yet" in as_json.stderr
    stats = json.loads(invoke(runner, "stats", "--db", str(path), "--json").stdout)
    assert stats["by_model"] == []
    assert stats["total"]["count"] == 0
    show = invoke(runner, "show", "abcd", "--db", str(path))
    assert show.exit_code == 1
    assert "no traces yet" in show.stderr


def test_missing_default_store_is_not_an_error_and_is_not_created(runner, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PLANO_HOME", str(home))
    expected = home / "traces.db"
    for argv in (["list"], ["stats"], []):
        result = runner.invoke(app, ["traces", *argv])
        assert result.exit_code == 0, result.output
        assert f"no traces yet: {expected} does not exist" in result.stdout
        assert "--db" in result.stdout
    as_json = runner.invoke(app, ["traces", "stats", "--json"])
    assert json.loads(as_json.stdout)["total"]["count"] == 0
    show = runner.invoke(app, ["traces", "show", T_CODE])
    assert show.exit_code == 1
    assert str(expected) in show.stderr
    assert not expected.exists()
    assert not home.exists()


def test_missing_db_given_explicitly_exits_1(runner, tmp_path):
    missing = tmp_path / "nope.db"
    for argv in (["list"], ["stats"], ["show", T_CODE], ["tail"]):
        result = invoke(runner, *argv, "--db", str(missing))
        assert result.exit_code == 1, argv
        assert f"no trace store at {missing} (--db)" in result.stderr
    assert not missing.exists()


def test_a_file_that_is_not_a_store_is_a_clear_error(runner, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("this is not sqlite " * 100)
    result = invoke(runner, "list", "--db", str(junk))
    assert result.exit_code == 1
    assert "cannot open the trace store" in result.stderr


# -- tail ----------------------------------------------------------------------------------


def request(trace_id: str, started_at: float, **fields) -> StoreBatch:
    """A call, the only one of its trace unless it names another's root span."""
    fields.setdefault("model", GPT)
    fields.setdefault("status", 200)
    fields.setdefault("span_id", trace_id[-16:])
    return StoreBatch(requests=[RequestRow(trace_id, started_at, **fields)])


def tid(n: int) -> str:
    return f"{n:032x}"


def test_tailer_reports_each_new_request_once_and_catches_late_finishers(tmp_path):
    now = 1_750_000_000.0
    with TraceStore.open(tmp_path / "t.db") as store:
        store.write(request(tid(1), now - 5))  # finished before the tail began
        tailer = tail_mod.Tailer(store, window_s=60, page=2, now=now)
        tailer.prime()
        assert tailer.poll() == []
        store.write(request(tid(2), now + 1))
        store.write(request(tid(3), now + 2))
        store.write(request(tid(4), now + 3))  # three rows, pages of two: paging works
        assert [r.trace_id for r in tailer.poll()] == [tid(2), tid(3), tid(4)]
        assert tailer.poll() == []  # nothing twice
        # Started before the newest seen, finished after: a start-time cursor misses it.
        store.write(request(tid(5), now - 1, latency_ms=9_000.0))
        store.write(request(tid(6), now + 4))
        assert [r.trace_id for r in tailer.poll()] == [tid(5), tid(6)]
        # Beyond the window: forgotten, and not reported.
        store.write(request(tid(7), now - 120))
        assert tailer.poll() == []
        assert tailer.remembered == 6
        store.write(request(tid(8), now + 100))  # the window moves on: the rest is forgotten
        assert [r.trace_id for r in tailer.poll()] == [tid(8)]
        assert tailer.remembered == 1


def test_tailer_since_backfills(tmp_path):
    now = 1_750_000_000.0
    with TraceStore.open(tmp_path / "t.db") as store:
        for i in range(5):
            store.write(request(tid(i), now - 100 + i * 10))
        tailer = tail_mod.Tailer(store, since=now - 75, window_s=60, page=2)
        tailer.prime()  # a backfill primes nothing
        assert [r.trace_id for r in tailer.poll()] == [tid(3), tid(4)]
        assert tailer.poll() == []


def test_follow_stops_on_limit_condition_or_poll_count(tmp_path):
    with TraceStore.open(tmp_path / "t.db") as store:
        tailer = tail_mod.Tailer(store, window_s=60)
        tailer.prime()
        got: list[str] = []
        counter = iter(range(100))

        def write_between_polls(_seconds: float) -> None:
            i = next(counter)
            store.write(request(tid(100 + i), time.time(), status=500 if i % 2 else 200))

        emitted = tail_mod.follow(
            tailer,
            lambda row: got.append(row.trace_id),
            keep=lambda row: row.status == 200,
            sleep=write_between_polls,
            max_polls=5,
        )
        assert emitted == 2  # written before polls 2..5: 100, 101, 102, 103; 200s only
        assert got == [tid(100), tid(102)]
        assert tail_mod.follow(tailer, got.append, sleep=write_between_polls, limit=1) == 1
        stops = iter([False, True])  # a third call would raise StopIteration
        quiet = tail_mod.follow(
            tailer, got.append, sleep=lambda _s: None, should_stop=lambda: next(stops)
        )
        assert quiet == 0


def test_tail_backfills_since_and_stops_at_limit(runner, db):
    result = invoke(runner, "tail", "--db", db, "--since", "1h", "--limit", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert T_FAIL[:12] in lines[0]  # oldest first, as they happened
    assert T_REASON[:12] in lines[1]
    assert "upstream timeout" in lines[0]
    assert "following" in result.stderr


def test_tail_json_lines_with_where(runner, db):
    result = invoke(
        runner,
        "tail",
        "--db",
        db,
        "--since",
        "4d",
        "--json",
        "-w",
        "model=" + CLAUDE,
        "--limit",
        "2",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    # A tail prints calls: the agent's run called Claude twice.
    assert [r["trace_id"] for r in rows] == [T_AGENT, T_AGENT]
    assert [r["span_id"] for r in rows] == [span_id(T_AGENT, 0), span_id(T_AGENT, 32)]
    assert "request_messages" not in rows[0]


def test_tail_reports_each_call_of_a_trace(tmp_path):
    now = 1_750_000_000.0
    with TraceStore.open(tmp_path / "t.db") as store:
        tailer = tail_mod.Tailer(store, window_s=60, now=now)
        tailer.prime()
        for n in range(3):
            store.write(request(tid(1), now + n, span_id=f"{n:016x}"))
        assert [r.span_id for r in tailer.poll()] == [f"{n:016x}" for n in range(3)]
        store.write(
            request(tid(1), now + 3, span_id=f"{3:016x}", error="cut", outcome="stream_error")
        )
        (line,) = tailer.poll()
        text = render_list.tail_line(line, now=now).plain
        assert " 200!" in text
        assert "stream_error  cut" in text


def test_tail_refuses_text_search(runner, db):
    result = invoke(runner, "tail", "--db", db, "-w", "text=hello")
    assert result.exit_code == 2
    assert "text is not available here" in result.stderr


def test_tail_prints_requests_as_they_arrive_until_ctrl_c(runner, db, monkeypatch):
    """New requests only, each once; a late finisher too; Ctrl-C ends it with exit 0."""
    calls = iter(range(100))

    def between_polls(_seconds: float) -> None:
        step = next(calls)
        with TraceStore.open(db) as store:
            if step == 0:
                store.write(request(tid(1), time.time(), model="step-0"))
            elif step == 1:
                # Started a while ago, just finished: before the newest start seen.
                store.write(request(tid(2), time.time() - 30, model="late", latency_ms=30000))
            else:
                raise KeyboardInterrupt

    monkeypatch.setattr(tail_mod, "pause", between_polls)
    result = invoke(runner, "tail", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    models = [json.loads(line)["model"] for line in result.stdout.splitlines()]
    assert models == ["step-0", "late"]  # nothing from before the tail began


def test_tail_waits_for_the_default_store_to_appear(runner, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("PLANO_HOME", str(home))
    calls = iter(range(100))

    def between_polls(_seconds: float) -> None:
        step = next(calls)
        if step == 0:
            TraceStore.open(home / "traces.db").close()  # the gateway starts
        elif step == 1:
            with TraceStore.open(home / "traces.db") as store:
                store.write(request(tid(9), time.time()))
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(tail_mod, "pause", between_polls)
    result = runner.invoke(app, ["traces", "tail"])
    assert result.exit_code == 0, result.output
    assert "waiting for" in result.stderr
    assert tid(9)[:12] in result.stdout


def test_tail_ends_cleanly_on_sigint(tmp_path):
    """The real thing: a process tailing a store another one writes, stopped by SIGINT."""
    path = tmp_path / "live.db"
    TraceStore.open(path).close()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plano_cli", "traces", "tail", "--db", str(path), "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = _read_line(proc.stderr)  # "following …" once primed
        assert "following" in ready
        with TraceStore.open(path) as store:
            store.write(request(tid(42), time.time()))
        line = _read_line(proc.stdout)
        assert json.loads(line)["trace_id"] == tid(42)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _read_line(stream) -> str:
    """A line, or a failure rather than a hang if none comes."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert box, "no line from the tail process"
    return box[0]


def test_narrow_terminals_lose_columns_not_digits(runner, db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    listed_ = invoke(runner, "list", "--db", db).stdout
    assert "SIGNALS" not in listed_
    assert "TTFT" not in listed_
    assert "$0.0135" in listed_
    assert "30.00 s" in listed_
    stats = invoke(runner, "stats", "--db", db).stdout
    assert "TTFT p95" not in stats
    assert CLAUDE in stats
    assert "$0.0151" in stats
    for out in (listed_, stats):
        assert max(len(line) for line in out.splitlines()) <= 80


def test_fit_drops_optional_columns_then_narrows_the_widest_name():
    widths = {"NAME": 30, "OTHER": 20, "N": 5, "OPT": 10}
    # 4 columns: 2 * 4 - 1 = 7 of spacing.
    assert columns.fit(widths, 72, optional=("OPT",), flexible=("NAME", "OTHER")) == widths
    narrowed = columns.fit(widths, 70, optional=("OPT",), flexible=("NAME", "OTHER"))
    assert narrowed == {"NAME": 28, "OTHER": 20, "N": 5, "OPT": 10}
    dropped = columns.fit(widths, 40, optional=("OPT",), flexible=("NAME", "OTHER"), flex_min=12)
    assert dropped == {"NAME": 15, "OTHER": 15, "N": 5}


# -- pieces --------------------------------------------------------------------------------


def test_the_cli_keys_are_the_stores_keys():
    assert keys.STORE_KEYS == FILTER_KEYS
    assert keys.OUTCOMES == OUTCOMES
    assert keys.DECISIONS == DECISIONS


def test_since_durations_and_times():
    now = 1_750_000_000.0
    assert args.parse_since("45s", now) == now - 45
    assert args.parse_since("30m", now) == now - 1800
    assert args.parse_since("2h", now) == now - 7200
    assert args.parse_since("1d", now) == now - 86_400
    assert args.parse_since("1h30m", now) == now - 5400
    assert args.parse_since("1.5h", now) == now - 5400
    assert args.parse_since("2025-06-15T00:00:00Z") == 1_749_945_600
    assert args.parse_since(None) is None
    with pytest.raises(args.ArgumentError):
        args.parse_since("30 minutes")


def test_times_are_compact_local_times():
    now = datetime(2025, 6, 15, 18, 0, 0).timestamp()
    assert fmt.local_time(datetime(2025, 6, 15, 9, 5, 7).timestamp(), now) == "09:05:07"
    assert fmt.local_time(datetime(2025, 6, 14, 9, 5, 7).timestamp(), now) == "Jun 14 09:05"
    assert fmt.local_time(datetime(2024, 6, 14, 9, 5, 7).timestamp(), now) == "2024-06-14"


def test_cli_start_up_does_not_import_rich_or_the_store():
    code = (
        "import sys, plano_cli.app; "
        "print(sorted(m for m in ('rich', 'sqlite_utils', 'proxy.telemetry.store') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_show_keeps_the_rails_of_nested_spans(runner, tmp_path):
    trace_id = "9" * 32
    start = int(time.time() * 1e9)

    def span(n: int, parent: int | None, name: str) -> SpanRow:
        return SpanRow(
            span_id(trace_id, n),
            trace_id,
            name,
            start + n * 1_000_000,
            start + 50_000_000,
            span_id(trace_id, parent) if parent is not None else None,
        )

    # root ─┬─ agent ── tool.search
    #       └─ plano(llm)
    spans = [span(0, None, "root"), span(1, 0, "agent"), span(2, 1, "tool.search")]
    spans.append(span(3, 0, "plano(llm)"))
    path = tmp_path / "traces.db"
    with TraceStore.open(path) as store:
        store.write(StoreBatch(spans=spans))
    result = invoke(runner, "show", trace_id, "--db", str(path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The grandchild keeps its parent's rail: "│  └─", not a collapsed "│ └─".
    assert any(line.startswith("│  └─ tool.search") for line in lines), result.output
    assert any(line.startswith("└─ plano(llm)") for line in lines), result.output
