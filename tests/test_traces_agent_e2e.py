"""An agent's run end to end: many LLM calls under one client `traceparent`, through the
real gateway and its telemetry worker, read back by `plano traces list|show|stats`.

And a stream that fails after its 200: stored with its outcome, which the list, `show`
and `--where outcome=` tell apart from a stream that succeeded.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from fakes.providers import reset_mid_stream
from test_telemetry_e2e import gateway, openai_client, stored
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.telemetry.store import TraceStore

RUN = "5e1f0c2a9b7d4e6f8a0b1c2d3e4f5a6b"  # the agent's trace id
TRACEPARENT = f"00-{RUN}-00f067aa0ba902b7-01"


def traces(*argv: str) -> str:
    result = CliRunner().invoke(app, ["traces", *argv])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_five_calls_in_one_trace_are_one_trace_of_five_calls(tmp_path, monkeypatch):
    # The defect: the five calls overwrote one another's row (one row, 7 of 35 input
    # tokens, one call's latency; two rows under concurrency).
    def call(n: int) -> openai.types.CompletionUsage:
        answer = client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": f"step {n} of the plan, go"}],
            extra_headers={"traceparent": TRACEPARENT},
        )
        assert answer.usage is not None
        return answer.usage

    with gateway(tmp_path) as (proxy, _ups):
        client = openai_client(proxy)
        usages = [call(0), call(1)]  # two in turn, then three at once
        with ThreadPoolExecutor(3) as pool:
            usages += pool.map(call, range(2, 5))
        stored(tmp_path, 5)
    db = str(tmp_path / "traces.db")
    prompt = sum(u.prompt_tokens for u in usages)
    completion = sum(u.completion_tokens for u in usages)

    with TraceStore.open(db, read_only=True) as store:
        (run,) = store.list_traces()
        detail = store.get_trace(RUN)
    assert run.trace_id == RUN
    assert (run.calls, run.input_tokens, run.output_tokens) == (5, prompt, completion)
    assert detail is not None
    assert len({c.span_id for c in detail.calls}) == 5
    first = detail.calls[0]
    # From the first start to the last end: with calls at once, the last to start need
    # not be the last to end.
    last_end = max(c.started_at * 1000 + (c.latency_ms or 0) for c in detail.calls)
    assert run.started_at == first.started_at
    assert run.latency_ms == pytest.approx(last_end - first.started_at * 1000, abs=1)
    assert run.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in detail.calls))

    monkeypatch.setenv("COLUMNS", "160")
    listed = json.loads(traces("list", "--db", db, "--json"))["traces"]
    assert [(t["trace_id"], t["calls"]) for t in listed] == [(RUN, 5)]
    assert (listed[0]["input_tokens"], listed[0]["output_tokens"]) == (prompt, completion)
    text = traces("list", "--db", db)
    (row,) = [line for line in text.splitlines() if RUN[:12] in line]
    assert " 5 " in row
    assert f"{prompt}→{completion}" in row
    assert "1 trace, newest first" in text

    shown = json.loads(traces("show", RUN, "--db", db, "--json"))
    assert [c["number"] for c in shown["calls"]] == [1, 2, 3, 4, 5]
    assert sum(c["input_tokens"] for c in shown["calls"]) == prompt
    assert shown["summary"]["calls"] == 5
    assert sum(s["name"] == "plano(inbound)" for s in shown["spans"]) == 5
    assert "Calls (5)" in traces("show", RUN[:8], "--db", db)

    stats = json.loads(traces("stats", "--db", db, "--json"))
    assert stats["total"]["count"] == 5
    assert [(g["key"], g["count"]) for g in stats["by_model"]] == [("openai/gpt-4o", 5)]
    assert (stats["total"]["input_tokens"], stats["total"]["output_tokens"]) == (
        prompt,
        completion,
    )
    assert traces("stats", "--db", db).startswith("5 calls, 0 failed")


def test_a_stream_that_fails_after_its_200_is_stored_as_a_stream_error(tmp_path, monkeypatch):
    with gateway(tmp_path) as (proxy, ups):
        client = openai_client(proxy)
        ups["openai"][0].push(reset_mid_stream(after_chunks=2))
        stream = client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "tell me a long story please"}],
            stream=True,
        )
        with pytest.raises(openai.APIError):
            for _ in stream:  # the gateway ends it with an error event
                pass
        client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "and a short one"}]
        )
        (failed,) = [c for c in stored(tmp_path, 2) if c.stream]
    db = str(tmp_path / "traces.db")
    # What the client got in its headers, and how the call ended.
    assert (failed.status, failed.outcome) == (200, "stream_error")
    assert failed.error

    by_status = json.loads(traces("list", "--db", db, "-w", "status=200", "--json"))["traces"]
    assert {t["outcome"] for t in by_status} == {"ok", "stream_error"}
    only = json.loads(traces("list", "--db", db, "-w", "outcome=stream_error", "--json"))
    assert [t["trace_id"] for t in only["traces"]] == [failed.trace_id]
    ok = json.loads(traces("list", "--db", db, "-w", "status=200", "-w", "outcome=ok", "--json"))
    assert failed.trace_id not in [t["trace_id"] for t in ok["traces"]]
    monkeypatch.setenv("COLUMNS", "160")
    (row,) = [
        line for line in traces("list", "--db", db).splitlines() if failed.trace_id[:12] in line
    ]
    assert "200!" in row
    assert "stream_error" in row
    shown = traces("show", failed.trace_id, "--db", db)
    assert "200!" in shown
    assert "stream_error (the stream failed after its status was sent)" in shown
    assert traces("stats", "--db", db).startswith("2 calls, 1 failed")
