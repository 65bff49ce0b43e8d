"""Filters in telemetry: a plano(filter) span per filter call (one per answer for output
filters), and the filter metrics, counted for unsampled requests too."""

from __future__ import annotations

import json
import urllib.request

import openai
import pytest
from fakes import filter_server as fs
from filters_harness import ANTHROPIC_KEY, OPENAI_KEY, filter_servers, filters_config
from prometheus_client.parser import text_string_to_metric_families
from proxy_harness import ProxyThread, openai_and_anthropic_upstreams
from test_agents_telemetry import _spans, _value
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.telemetry.settings import WorkerSettings

LEAK = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture(scope="module")
def world():
    with (
        openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as upstreams,
        filter_servers(("guard", "second")) as servers,
    ):
        yield upstreams, servers


def _gateway(world, tmp_path, sampling: int):
    upstreams, servers = world
    filters = (
        f"- {{id: guard, type: http, url: '{servers['guard'].url}', mode: observe}}\n"
        f"- {{id: second, type: http, url: '{servers['second'].url}', timeout: 200ms,"
        " on_error: fail_open}\n"
    )
    config = filters_config(
        upstreams,
        filters,
        "input_filters: [guard, second]\noutput_filters: [second]",
        extra=f"tracing: {{random_sampling: {sampling}}}\n",
    )
    worker = WorkerSettings(store_path=str(tmp_path / "traces.db"), admin_port=0)
    return ProxyThread(config, telemetry=worker)


def _ask(proxy) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key", max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )


def _metrics(proxy) -> dict[str, list]:
    url = proxy.server.admin_url + "/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_unsampled_requests_are_counted(world, tmp_path):
    _, servers = world
    servers["guard"].reset(fs.status(403, b"no"))
    servers["second"].reset(fs.hang(2))
    with _gateway(world, tmp_path, sampling=0) as proxy:
        for _ in range(2):
            _ask(proxy)
        metrics = {}
        for _ in range(100):
            metrics = _metrics(proxy)
            decisions = metrics.get("plano_filter_decisions", [])
            if _value(decisions, "plano_filter_decisions_total") >= 6:
                break
            __import__("time").sleep(0.1)
    decisions = metrics["plano_filter_decisions"]
    total = "plano_filter_decisions_total"
    assert _value(decisions, total, filter="guard", decision="block", mode="observe") == 2
    assert _value(decisions, total, filter="second", direction="input", decision="error") == 2
    assert _value(decisions, total, filter="second", direction="output", decision="error") == 2
    errors = metrics["plano_filter_errors"]
    assert _value(errors, "plano_filter_errors_total", filter="second", reason="timeout") == 4
    duration = metrics["plano_filter_duration_seconds"]
    assert _value(duration, "plano_filter_duration_seconds_count", filter="guard") == 2


def test_spans_carry_the_decision_redacted(world, tmp_path):
    _, servers = world
    servers["guard"].reset(fs.status(400, f"blocked: key {LEAK} found".encode()))
    servers["second"].reset(fs.replace(b"hello", b"HELLO"))
    with _gateway(world, tmp_path, sampling=100) as proxy:
        raw = _ask(proxy)
        trace_id = raw.headers["x-plano-trace-id"]
        spans = _spans(tmp_path, trace_id, 5)
    filters = [s for s in spans if s.name == "plano(filter)"]
    by_key = {(s.attributes["filter.id"], s.attributes["filter.direction"]): s for s in filters}
    assert set(by_key) == {("guard", "input"), ("second", "input"), ("second", "output")}
    guard = by_key["guard", "input"].attributes
    assert guard["filter.decision"] == "block"
    assert guard["filter.mode"] == "observe"
    assert guard["filter.applied"] is False
    assert guard["filter.status"] == 400
    assert LEAK not in guard["filter.message"]
    assert guard["filter.message"].startswith("blocked: key ")
    second = by_key["second", "input"].attributes
    assert second["filter.decision"] == "modify"
    assert second["filter.diff"].startswith("messages[0]")
    output = by_key["second", "output"].attributes
    assert output["filter.chunks"] == 1
    root = next(s for s in spans if s.name == "plano(inbound)")
    assert all(s.parent_id == root.span_id for s in filters)
    # plano traces finds it by what the filter would have done (observe mode).
    db = str(tmp_path / "traces.db")
    where = ["--where", "filter=guard", "--where", "decision=block"]
    result = CliRunner().invoke(app, ["traces", "list", "--db", db, "--json", *where])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["traces"]
    assert row["trace_id"] == trace_id
    assert row["would_block"] == ["guard"]
    assert row["blocked_by"] == []
