"""Telemetry end to end: the real gateway, its real telemetry worker process, real SQLite.

Requests go through the official OpenAI and Anthropic SDKs to stand-in providers; what
the worker stored is read back with TraceStore and plain sqlite3, and the admin
listener is read over HTTP.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anthropic
import openai
import pytest
from fakes.providers import status
from prometheus_client.parser import text_string_to_metric_families
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams

from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.store import TraceStore

OPENAI_KEY = "test-openai-key-0f3a9"
ANTHROPIC_KEY = "test-anthropic-key-7c21e"
CLIENT_PARENT = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def _config(urls: dict, extra: str = "", sampling: float = 100) -> str:
    return f"""
        version: v0.3.0
        listeners:
          - name: llm
            type: model
            port: 12000
        model_providers:
          - model: openai/gpt-4o
            access_key: {OPENAI_KEY}
            base_url: {urls["openai"][1]}
            default: true
          - model: anthropic/claude-sonnet-4-5
            access_key: {ANTHROPIC_KEY}
            base_url: {urls["anthropic"][1]}
        tracing:
          random_sampling: {sampling}
          span_attributes:
            header_prefixes: [x-acme-, x-]
            static:
              environment: test
        {extra}
        """


@contextmanager
def gateway(tmp_path: Path, *, sampling: float = 100, extra: str = "", **settings) -> Iterator:
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as ups:
        config = config_from_yaml(_config(ups, extra, sampling))
        worker = WorkerSettings(
            store_path=str(tmp_path / "traces.db"),
            admin_port=0,
            signals=not config.overrides.disable_signals,
            **settings,
        )
        with ProxyThread(config, telemetry=worker) as proxy:
            yield proxy, ups


def wait_for(predicate: Callable[[], object], timeout_s: float = 20.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def stored(tmp_path: Path, count: int) -> list:
    """The stored calls (every request through the gateway), once `count` are there."""

    def ready():
        rows = []
        with TraceStore.open(tmp_path / "traces.db") as store:
            for trace in store.list_traces(limit=10_000):
                detail = store.get_trace(trace.trace_id)
                rows += detail.calls if detail is not None else []
        return rows if len(rows) >= count else None

    return wait_for(ready)


def metrics(proxy) -> dict[str, list]:
    text = urllib.request.urlopen(proxy.server.admin_url + "/metrics", timeout=5).read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def openai_client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="client-key-unused", max_retries=0)


def test_sdk_requests_are_stored_with_model_tokens_ttft_and_status(tmp_path):
    with gateway(tmp_path) as (proxy, _ups):
        client = openai_client(proxy)
        raw = client.chat.completions.with_raw_response.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "one two three"}]
        )
        answer = raw.parse()
        stream = client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "stream these four words"}],
            stream=True,
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        claude = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
        message = claude.messages.create(
            model="anthropic/claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "hello claude"}],
        )
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="openai/nope", messages=[{"role": "user", "content": "x"}]
            )
        rows = stored(tmp_path, 4)

    by_id = {r.trace_id: r for r in rows}
    first = by_id[raw.headers["x-plano-trace-id"]]
    assert (first.model, first.provider, first.status, first.stream) == (
        "openai/gpt-4o",
        "openai",
        200,
        False,
    )
    assert first.input_tokens == answer.usage.prompt_tokens
    assert first.output_tokens == answer.usage.completion_tokens
    assert first.ttft_ms is not None
    assert 0 < first.ttft_ms <= first.latency_ms
    assert first.cost_usd == pytest.approx(
        (answer.usage.prompt_tokens * 2.5 + answer.usage.completion_tokens * 10) / 1e6
    )
    assert first.api == "openai_chat"
    assert first.listener == "llm"
    assert first.outcome == "ok"

    streamed_row = next(r for r in rows if r.stream)
    assert streamed_row.status == 200
    assert streamed_row.output_tokens > 0
    assert 0 < streamed_row.ttft_ms <= streamed_row.latency_ms
    assert streamed.strip()

    claude_row = next(r for r in rows if r.api == "anthropic_messages")
    assert claude_row.model == "anthropic/claude-sonnet-4-5"
    assert claude_row.input_tokens == message.usage.input_tokens
    assert claude_row.output_tokens == message.usage.output_tokens

    bad = next(r for r in rows if r.status == 400)
    assert bad.model is None
    assert "openai/nope" in (bad.error or "")


def test_messages_and_spans_are_stored_with_the_trace(tmp_path):
    with gateway(tmp_path) as (proxy, _):
        raw = openai_client(proxy).chat.completions.with_raw_response.create(
            model="openai/gpt-4o",
            messages=[
                {"role": "user", "content": "fix my csv parser"},
                {"role": "assistant", "content": "Here is the fix: use csv.reader."},
                {"role": "user", "content": "thanks, that worked perfectly"},
            ],
            extra_headers={"x-acme-tenant": "blue", "x-api-key": "must-not-be-an-attribute"},
        )
        trace_id = raw.headers["x-plano-trace-id"]
        stored(tmp_path, 1)
    with TraceStore.open(tmp_path / "traces.db") as store:
        detail = store.get_trace(trace_id)
    assert detail.calls[0].request_messages[-1]["content"] == "thanks, that worked perfectly"
    assert "echo" in detail.calls[0].response_messages[0]["content"]
    names = sorted(span.name for span in detail.spans)
    assert names == ["plano(inbound)", "plano(llm)"]
    inbound = next(s for s in detail.spans if s.name == "plano(inbound)")
    llm = next(s for s in detail.spans if s.name == "plano(llm)")
    assert llm.parent_id == inbound.span_id
    assert inbound.parent_id is None
    assert inbound.attributes["x-acme-tenant"] == "blue"
    assert inbound.attributes["environment"] == "test"
    assert "x-api-key" not in inbound.attributes
    assert llm.attributes["llm.usage.prompt_tokens"] == detail.calls[0].input_tokens
    # "thanks ... worked" is gratitude and success: the analyzer scored the conversation.
    assert detail.calls[0].signal_quality in ("good", "excellent")
    assert {s.type for s in detail.signals} >= {"gratitude", "success"}
    assert detail.calls[0].signal_count == len(detail.signals)


def test_client_traceparent_reaches_the_upstream_and_the_stored_spans(tmp_path):
    traceparent = f"00-{CLIENT_PARENT}-{CLIENT_SPAN}-01"
    with gateway(tmp_path) as (proxy, ups):
        raw = openai_client(proxy).chat.completions.with_raw_response.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "trace me"}],
            extra_headers={"traceparent": traceparent, "tracestate": "acme=1"},
        )
        upstream = ups["openai"][0].last.headers
        stored(tmp_path, 1)
    assert raw.headers["x-plano-trace-id"] == CLIENT_PARENT
    version, trace_id, parent_span, flags = upstream["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", CLIENT_PARENT, "01")
    assert parent_span != CLIENT_SPAN  # the upstream's parent is Plano's call span
    assert upstream["tracestate"] == "acme=1"
    with TraceStore.open(tmp_path / "traces.db") as store:
        detail = store.get_trace(CLIENT_PARENT)
    spans = {s.name: s for s in detail.spans}
    assert spans["plano(inbound)"].parent_id == CLIENT_SPAN
    assert spans["plano(llm)"].span_id == parent_span


def test_failover_is_one_llm_span_per_attempt(tmp_path):
    extra = """
        model_aliases:
          smart:
            target: openai/gpt-4o
            fallbacks: [anthropic/claude-sonnet-4-5]
    """
    with gateway(tmp_path, extra=extra) as (proxy, ups):
        ups["openai"][0].push(status(503), status(503), status(503))
        raw = openai_client(proxy).chat.completions.with_raw_response.create(
            model="smart", messages=[{"role": "user", "content": "fail over"}]
        )
        stored(tmp_path, 1)
        families = metrics(proxy)
    with TraceStore.open(tmp_path / "traces.db") as store:
        detail = store.get_trace(raw.headers["x-plano-trace-id"])
    llm = sorted((s for s in detail.spans if s.name == "plano(llm)"), key=lambda s: s.start_ns)
    assert [s.attributes["llm.model"] for s in llm] == ["openai/gpt-4o"] * 3 + [
        "anthropic/claude-sonnet-4-5"
    ]
    assert [s.status_code for s in llm] == ["error", "error", "error", "unset"]
    assert detail.calls[0].model == "anthropic/claude-sonnet-4-5"
    errors = {
        s.labels["outcome"]: s.value
        for s in families["plano_upstream_errors"]
        if s.name == "plano_upstream_errors_total"
    }
    assert errors == {"http_503": 3.0}


@pytest.mark.parametrize("sampling", [0, 50, 100])
def test_sampling_keeps_the_configured_share_and_metrics_count_everything(tmp_path, sampling):
    total = 200
    with gateway(tmp_path, sampling=sampling) as (proxy, _):
        client = openai_client(proxy)
        for i in range(total):
            client.chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": f"n {i}"}]
            )
        requests = wait_for(
            lambda: (
                sum(
                    s.value
                    for s in metrics(proxy).get("plano_requests", [])
                    if s.name == "plano_requests_total"
                )
                == total
            )
        )
        assert requests
        with TraceStore.open(tmp_path / "traces.db") as store:
            kept = store.count()
    if sampling == 0:
        assert kept == 0
    elif sampling == 100:
        assert kept == total
    else:
        # Binomial(200, 0.5): mean 100, sd ~7; 60..140 is more than five sd either side.
        assert 60 <= kept <= 140


def test_sampled_parent_is_followed_below_100_and_not_at_0(tmp_path):
    headers = {"traceparent": f"00-{CLIENT_PARENT}-{CLIENT_SPAN}-01"}
    unsampled = {"traceparent": f"00-{'1' * 32}-{CLIENT_SPAN}-00"}
    with gateway(tmp_path, sampling=1) as (proxy, _):
        client = openai_client(proxy)
        for value in (headers, unsampled):
            client.chat.completions.create(
                model="openai/gpt-4o",
                messages=[{"role": "user", "content": "x"}],
                extra_headers=value,
            )
        rows = stored(tmp_path, 1)
        time.sleep(0.3)  # give a wrongly kept second trace the time to arrive
        with TraceStore.open(tmp_path / "traces.db") as store:
            assert store.count() == 1
    assert rows[0].trace_id == CLIENT_PARENT


def test_no_credential_reaches_the_database_or_the_logs(tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with gateway(tmp_path) as (proxy, ups):
        client = openai.OpenAI(
            base_url=proxy.url + "/v1", api_key="client-secret-token-9d8e", max_retries=0
        )
        client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-acme-authorization": "Bearer acme-secret-4455"},
        )
        stream = client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        list(stream)
        ups["openai"][0].push(status(401, body={"error": {"message": f"bad key {OPENAI_KEY}"}}))
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": "fail"}]
            )
        stored(tmp_path, 3)
    secrets = [OPENAI_KEY, ANTHROPIC_KEY, "client-secret-token-9d8e", "acme-secret-4455"]
    files = [p for p in tmp_path.iterdir() if p.name.startswith("traces.db")]
    assert files
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, (path.name, secret)
    out, err = capfd.readouterr()
    logs = out + err + caplog.text
    for secret in secrets:
        assert secret not in logs


def test_disable_signals_stores_no_signals(tmp_path):
    extra = """
        overrides:
          disable_signals: true
    """
    with gateway(tmp_path, extra=extra) as (proxy, _):
        openai_client(proxy).chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "thanks, perfect"}]
        )
        rows = stored(tmp_path, 1)
    assert rows[0].signal_quality is None
    with sqlite3.connect(tmp_path / "traces.db") as db:
        assert db.execute("select count(*) from signals").fetchone()[0] == 0


def test_agent_spans_sent_over_otlp_join_the_request_trace(tmp_path):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    with gateway(tmp_path) as (proxy, _):
        provider = TracerProvider(resource=Resource.create({"service.name": "travel-agent"}))
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=proxy.server.admin_url + "/v1/traces"))
        )
        tracer = provider.get_tracer("agent")
        with tracer.start_as_current_span("agent.plan") as span:
            carrier: dict[str, str] = {}
            TraceContextTextMapPropagator().inject(carrier)
            openai_client(proxy).chat.completions.create(
                model="openai/gpt-4o",
                messages=[{"role": "user", "content": "plan a trip"}],
                extra_headers=carrier,
            )
            agent_trace = format(span.get_span_context().trace_id, "032x")
            agent_span = format(span.get_span_context().span_id, "016x")
        provider.shutdown()

        def both():
            with TraceStore.open(tmp_path / "traces.db") as store:
                detail = store.get_trace(agent_trace)
            names = {s.name for s in detail.spans} if detail else set()
            return detail if {"agent.plan", "plano(inbound)"} <= names else None

        detail = wait_for(both)
    spans = {s.name: s for s in detail.spans}
    assert spans["plano(inbound)"].parent_id == agent_span
    assert spans["agent.plan"].attributes["service.name"] == "travel-agent"
    assert len(detail.calls) == 1
    assert detail.calls[0].model == "openai/gpt-4o"


def test_otlp_receiver_rejects_garbage_in_otlp_error_shape(tmp_path):
    with gateway(tmp_path) as (proxy, _):
        request = urllib.request.Request(
            proxy.server.admin_url + "/v1/traces",
            data=b"not json",
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400
    body = info.value.read()
    assert b'"code"' in body
    assert b"message" in body


def test_records_of_requests_finishing_at_shutdown_are_not_lost(tmp_path):
    with gateway(tmp_path) as (proxy, _):
        client = openai_client(proxy)
        for i in range(30):
            client.chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": f"last {i}"}]
            )
        # Stop at once: the sender has not shipped the last records yet.
    with TraceStore.open(tmp_path / "traces.db") as store:
        assert store.count() == 30


def test_a_killed_worker_costs_no_request_and_is_started_again(tmp_path):
    with gateway(tmp_path) as (proxy, _):
        sink = proxy.server.sink
        sink.restart_interval_s = 0.0
        client = openai_client(proxy)
        client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "before"}]
        )
        stored(tmp_path, 1)
        old_pid = sink.pid
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: sink._process.poll() is not None)
        for i in range(5):
            answer = client.chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": f"during {i}"}]
            )
            assert answer.choices[0].message.content
        wait_for(lambda: sink.pid != old_pid and sink._alive())
        client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "after"}]
        )
        wait_for(lambda: sink.sent + sink.dropped == 7)
        rows = stored(tmp_path, 2)
        # Every record is either stored or counted as dropped: none vanishes silently.
        wait_for(lambda: len(stored(tmp_path, 1)) == sink.sent)
    assert len(rows) >= 2


@pytest.mark.slow
def test_real_prometheus_scrapes_the_admin_listener(tmp_path):
    from prometheus_harness import PROMETHEUS, start_prometheus, value

    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    with gateway(tmp_path) as (proxy, _):
        client = openai_client(proxy)
        for i in range(3):
            client.chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": f"scrape {i}"}]
            )
        target = proxy.server.admin_url.removeprefix("http://")
        with start_prometheus(tmp_path / "prometheus", [target]) as prometheus:
            result = prometheus.wait_for(
                'sum(plano_requests_total{model="openai/gpt-4o",status="200"})',
                lambda r: r and value(r) == 3.0,
                timeout=60,
            )
            tokens = prometheus.query('sum(plano_tokens_total{type="output"})')
    assert value(result) == 3.0
    assert value(tokens) > 0


def test_spans_are_exported_over_otlp_and_flushed_at_shutdown(tmp_path, monkeypatch):
    """Gateway A exports OTLP/HTTP to gateway B's receiver: B stores A's spans."""
    collector_dir = tmp_path / "collector"
    collector_dir.mkdir()
    with gateway(collector_dir) as (collector, _):
        endpoint = collector.server.admin_url
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only shutdown flushes
        with gateway(tmp_path) as (proxy, _):
            raw = openai_client(proxy).chat.completions.with_raw_response.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": "export me"}]
            )
            trace_id = raw.headers["x-plano-trace-id"]
            stored(tmp_path, 1)
        # A has stopped: its exporter's last batch has been sent on the way out.

        def exported():
            with TraceStore.open(collector_dir / "traces.db") as store:
                detail = store.get_trace(trace_id)
            return detail if detail and len(detail.spans) == 2 else None

        detail = wait_for(exported)
    assert {s.name for s in detail.spans} == {"plano(inbound)", "plano(llm)"}
    assert detail.calls == []  # B saw the spans, not the request
    llm = next(s for s in detail.spans if s.name == "plano(llm)")
    assert llm.attributes["llm.model"] == "openai/gpt-4o"
    assert llm.attributes["service.name"] == "plano"


def test_a_routed_request_stores_its_route_and_routing_span(tmp_path):
    routes = [
        {
            "name": "code_generation",
            "description": "writing code, functions and unit tests, and fixing bugs",
            "models": ["anthropic/claude-sonnet-4-5"],
        },
        {
            "name": "travel",
            "description": "planning trips, flights, hotels and visas",
            "models": ["openai/gpt-4o"],
        },
    ]
    with gateway(tmp_path) as (proxy, _):
        raw = openai_client(proxy).chat.completions.with_raw_response.create(
            model="none",
            messages=[{"role": "user", "content": "Write a Python function that reverses a list"}],
            extra_body={"routing_preferences": routes},
        )
        stored(tmp_path, 1)
        families = metrics(proxy)
    assert raw.headers["x-plano-route"] == "code_generation"
    with TraceStore.open(tmp_path / "traces.db") as store:
        detail = store.get_trace(raw.headers["x-plano-trace-id"])
    assert detail.calls[0].route == "code_generation"
    assert detail.calls[0].router_backend == "embedded"
    assert detail.calls[0].model == "anthropic/claude-sonnet-4-5"
    routing = next(s for s in detail.spans if s.name == "plano(routing)")
    assert routing.attributes["route.name"] == "code_generation"
    assert routing.attributes["routing.determination_ms"] > 0
    assert "code_generation" in routing.attributes["router.scores"]
    decisions = [
        s for s in families["plano_router_decisions"] if s.name == "plano_router_decisions_total"
    ]
    assert [(s.labels["route"], s.labels["backend"], s.value) for s in decisions] == [
        ("code_generation", "embedded", 1.0)
    ]


def test_the_trace_writer_runs_at_idle_priority_and_the_rest_does_not(tmp_path):
    with gateway(tmp_path) as (proxy, _):
        openai_client(proxy).chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        stored(tmp_path, 1)
        pid = proxy.server.sink.pid
        policies = [os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task")]
        # The writer (traces) yields any CPU; the reader (metrics) and the admin listener
        # keep normal priority, so a scrape answers while the proxy is saturated.
        assert policies.count(os.SCHED_IDLE) == 1
        assert policies.count(os.SCHED_OTHER) >= 2


def test_a_stalled_worker_catches_up_on_everything_queued_meanwhile(tmp_path):
    with gateway(tmp_path) as (proxy, _):
        sink = proxy.server.sink
        os.kill(sink.pid, signal.SIGSTOP)
        try:
            client = openai_client(proxy)
            for i in range(40):
                answer = client.chat.completions.create(
                    model="openai/gpt-4o", messages=[{"role": "user", "content": f"while {i}"}]
                )
                assert answer.choices[0].message.content
        finally:
            os.kill(sink.pid, signal.SIGCONT)
        rows = stored(tmp_path, 40)
        assert len({r.trace_id for r in rows}) == 40
        assert sink.dropped == 0


def bare_record(**fields: object) -> TelemetryRecord:
    """A sampled record with only what the bounds look at: the captured bodies."""
    return TelemetryRecord(
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "1",
        sampled=True,
        start_ns=0,
        end_ns=1,
        request_id="r",
        listener="llm",
        api="openai_chat",
        path="/v1/chat/completions",
        **fields,  # type: ignore[arg-type]
    )


def test_the_sink_backlog_is_bounded_by_count_and_by_bytes():
    from proxy.telemetry.sink import ProcessSink

    def record(body: bytes) -> TelemetryRecord:
        return bare_record(request_body=body, response_body=body)

    by_bytes = ProcessSink(WorkerSettings(), max_pending=100, max_pending_bytes=10_000)
    for _ in range(10):
        by_bytes.put(record(b"x" * 1_000))  # 2,000 bytes each: 5 fit
    assert len(by_bytes._pending) == 5
    assert by_bytes._unreported_drops == 5
    by_count = ProcessSink(WorkerSettings(), max_pending=3)
    for _ in range(5):
        by_count.put(record(b""))
    assert len(by_count._pending) == 3
    assert by_count._unreported_drops == 2


def test_the_worker_backlog_refuses_what_does_not_fit_and_counts_it():
    import queue

    from proxy.telemetry.metrics import GatewayMetrics
    from proxy.telemetry.processor import TelemetryProcessor
    from proxy.telemetry.worker import Backlog

    def record(size: int) -> TelemetryRecord:
        return bare_record(request_body=b"x" * size)

    work: queue.SimpleQueue = queue.SimpleQueue()
    backlog = Backlog(work, max_records=3, max_bytes=1_000)
    assert backlog.offer([record(100), record(100)]) == 0
    # Room for one more record: the first is taken, the second refused (not both).
    assert backlog.offer([record(100), record(100)]) == 1
    assert (backlog.records, backlog.bytes) == (3, 300)
    backlog.done(3, 300)
    # By bytes: 600 + 300 fit in 1,000, the next 300 does not.
    assert backlog.offer([record(600), record(300), record(300)]) == 1
    assert (backlog.records, backlog.bytes) == (2, 900)
    assert [len(item[1]) for item in (work.get(), work.get(), work.get())] == [2, 1, 2]

    metrics = GatewayMetrics()
    processor = TelemetryProcessor(WorkerSettings(store_enabled=False), metrics)
    processor.drop(2)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render()[0].decode())}
    assert families["plano_telemetry_dropped"].samples[0].value == 2
    assert processor.stats.dropped == 2


def test_a_worker_that_cannot_read_a_message_exits_and_is_replaced(tmp_path):
    with gateway(tmp_path) as (proxy, _):
        sink = proxy.server.sink
        sink.restart_interval_s = 0.0
        old_pid = sink.pid
        with sink._send_lock:
            sink._conn.send_bytes(b"not a pickle")
        # It stops (rather than hanging with a dead reader), and the next batch restarts it.
        wait_for(lambda: sink._process.poll() is not None)
        client = openai_client(proxy)
        for i in range(3):
            client.chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": f"after {i}"}]
            )
        wait_for(lambda: sink.pid != old_pid and sink._alive())
        wait_for(lambda: sink.sent + sink.dropped == 3)
        wait_for(lambda: len(stored(tmp_path, 1)) == sink.sent)
