"""Filter decisions in `plano traces list|show|tail` through the CLI, on a real SQLite
store of calls with filter chains (filter_seed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from filter_seed import (
    GUARD_ERROR,
    INJECTION_MESSAGE,
    PII_DIFF,
    T_AGENT_FILTERED,
    T_BLOCKED,
    T_FAILED_OPEN,
    T_OBSERVED,
    filter_runs,
)
from trace_seed import T_CODE, seed
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.telemetry.store import TraceStore


@pytest.fixture
def db(tmp_path: Path) -> str:
    now = time.time()
    path = tmp_path / "traces.db"
    seed(path, now)
    with TraceStore.open(path) as store:
        for batch in filter_runs(now):
            store.write(batch)
    return str(path)


def traces(*argv: str):
    return CliRunner().invoke(app, ["traces", *argv])


def listed(db: str, *where: str) -> list[dict]:
    argv = ["list", "--db", db, "--json"]
    for item in where:
        argv += ["--where", item]
    result = traces(*argv)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["traces"]


def test_where_filter_and_decision_hold_for_the_same_filter_call(db):
    ids = [row["trace_id"] for row in listed(db, "filter=injection", "decision=block")]
    assert ids == [T_BLOCKED, T_OBSERVED]  # the observed would-be block counts
    ids = [row["trace_id"] for row in listed(db, "filter=pii", "decision=block")]
    assert ids == [T_AGENT_FILTERED]  # T_BLOCKED: pii passed, injection blocked
    assert [row["trace_id"] for row in listed(db, "decision=error")] == [T_FAILED_OPEN]
    assert T_CODE in [row["trace_id"] for row in listed(db)]
    assert T_CODE not in [row["trace_id"] for row in listed(db, "decision=pass")]


def test_the_json_list_says_who_blocked_and_who_would_have(db):
    rows = {row["trace_id"]: row for row in listed(db, "decision=block")}
    assert rows[T_BLOCKED]["blocked_by"] == ["injection"]
    assert rows[T_OBSERVED]["blocked_by"] == []
    assert rows[T_OBSERVED]["would_block"] == ["injection"]
    assert rows[T_AGENT_FILTERED]["blocked_by"] == ["pii"]


def test_the_list_shows_the_blocking_filter_next_to_the_status(db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "140")
    result = traces("list", "--db", db, "--where", "filter=injection")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "BLOCKED BY" in lines[0]
    assert lines[0].index("STATUS") < lines[0].index("BLOCKED BY") < lines[0].index("MODEL")
    (blocked,) = [line for line in lines if T_BLOCKED[:12] in line]
    assert "403  injection " in blocked
    (observed,) = [line for line in lines if T_OBSERVED[:12] in line]
    assert "200  injection (observe)" in observed


def test_a_page_without_blocks_has_no_blocked_column(db):
    result = traces("list", "--db", db, "--where", "decision=error")
    assert result.exit_code == 0, result.output
    assert "BLOCKED BY" not in result.stdout
    assert T_FAILED_OPEN[:12] in result.stdout


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            "decision=blocked",
            "error: --where decision: expected one of pass, modify, block, error, not 'blocked'",
        ),
        ("filters=pii", "error: --where: unknown key 'filters'; valid keys:"),
    ],
)
def test_bad_filter_terms_are_usage_errors(db, where, message):
    result = traces("list", "--db", db, "--where", where)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)


@pytest.mark.parametrize("where", ["filter=pii", "decision=block"])
def test_tail_says_it_cannot_read_filter_calls(db, where):
    result = traces("tail", "--db", db, "--where", where)
    assert result.exit_code == 2
    assert f"--where: {where.split('=')[0]} is not available here" in result.stderr
    assert "filter=… and decision=… can" in result.stderr


def test_show_lists_each_filter_call_in_order(db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    result = traces("show", T_OBSERVED, "--db", db)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "would block: injection (observe)" in out  # the summary
    section = out[out.index("\nFilters\n") :]
    lines = section.splitlines()
    header = next(line for line in lines if line.startswith("#"))
    for column in ("DIRECTION", "FILTER", "KIND", "DECISION", "LATENCY", "DETAIL"):
        assert column in header
    assert "TARGET" not in header  # no filter here had one
    rows = [line for line in lines if line[:1].isdigit()]
    assert len(rows) == 3
    assert rows[0].split()[:5] == ["1", "input", "injection", "prompt_injection", "block"]
    assert "block (observe)" in rows[0]
    assert f"HTTP 403: {INJECTION_MESSAGE}" in rows[0]
    assert rows[1].split()[:5] == ["2", "input", "pii", "pii", "modify"]
    assert PII_DIFF in rows[1]
    assert rows[2].split()[:5] == ["3", "output", "guard", "http", "pass"]
    assert "25 ms" in rows[2]
    assert "12 chunks, 0 modified" in rows[2]


def test_show_a_block_an_error_and_an_agents_filter(db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out = traces("show", T_BLOCKED, "--db", db).stdout
    assert "blocked by injection" in out
    out = traces("show", T_FAILED_OPEN, "--db", db).stdout
    assert f"{GUARD_ERROR} (let through: fail_open); 1 chunk, 0 modified" in out
    out = traces("show", T_AGENT_FILTERED, "--db", db).stdout
    header = next(line for line in out.splitlines() if line.startswith("#  DIRECTION"))
    assert "TARGET" in header
    assert "weather_agent  HTTP 400: an api_key in the prompt" in out


def test_show_without_filters_has_no_filters_section(db):
    out = traces("show", T_CODE, "--db", db).stdout
    assert "\nFilters\n" not in out


def test_show_json_carries_the_filters(db):
    result = traces("show", T_OBSERVED, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    filters = doc["filters"]
    assert [(f["call"], f["position"], f["id"], f["decision"], f["mode"]) for f in filters] == [
        (1, 1, "injection", "block", "observe"),
        (1, 2, "pii", "modify", "enforce"),
        (1, 3, "guard", "pass", "enforce"),
    ]
    first = filters[0]
    assert first["applied"] is False
    assert first["kind"] == "prompt_injection"
    assert first["direction"] == "input"
    assert first["status"] == 403
    assert first["message"] == INJECTION_MESSAGE
    assert first["latency_ms"] == pytest.approx(1.2)
    assert filters[1]["diff"] == PII_DIFF
    assert (filters[2]["chunks"], filters[2]["chunks_modified"]) == (12, 0)
    # Each call has its own.
    assert [f["id"] for f in doc["calls"][0]["filters"]] == ["injection", "pii", "guard"]
    assert doc["summary"]["would_block"] == ["injection"]
    no_filters = json.loads(traces("show", T_CODE, "--db", db, "--json").stdout)
    assert no_filters["filters"] == []
