"""GatewayMetrics: records in, exposition out, parsed back with prometheus_client's parsers."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from proxy.telemetry.metrics import (
    MAX_LABEL_CHARS,
    GatewayMetrics,
    fallback_reason,
    outcome_label,
    router_outcome,
)
from proxy.telemetry.record import AttemptRecord, RoutingRecord, TelemetryRecord

MS = 1_000_000
GPT = "openai/gpt-4o"
CLAUDE = "anthropic/claude-sonnet-4"
REQUEST_ID = "req-7f3a9c21e4b84d0f"
SESSION = "session-affinity-0451"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def record(**overrides) -> TelemetryRecord:
    base = {
        "trace_id": TRACE_ID,
        "span_id": "00f067aa0ba902b7",
        "sampled": True,
        "start_ns": 1_700_000_000_000 * MS,
        "end_ns": 1_700_000_000_000 * MS + 800 * MS,
        "request_id": REQUEST_ID,
        "listener": "llm",
        "api": "openai_chat",
        "path": "/v1/chat/completions",
        "requested_model": "my-client-alias-" + REQUEST_ID,
        "session": SESSION,
        "attributes": {"x-user-id": "user-12345"},
    }
    base.update(overrides)
    return TelemetryRecord(**base)


def at(ms: float) -> int:
    return 1_700_000_000_000 * MS + int(ms * MS)


def attempt(model: str, outcome: str, provider: str | None = None) -> AttemptRecord:
    return AttemptRecord("1" * 16, model, provider or model.split("/")[0], outcome, at(0), at(1))


def passthrough_ok() -> TelemetryRecord:
    return record(
        passthrough=True,
        model=GPT,
        provider="openai",
        status=200,
        first_token_ns=at(790),
        input_tokens=120,
        output_tokens=40,
        cached_input_tokens=64,
        attempts=[attempt(GPT, "ok")],
    )


def stream_ok() -> TelemetryRecord:
    return record(
        stream=True,
        model=GPT,
        provider="openai",
        status=200,
        end_ns=at(2150),
        first_token_ns=at(150),
        input_tokens=300,
        output_tokens=101,
        reasoning_tokens=20,
        attempts=[attempt(GPT, "ok")],
    )


def failover() -> TelemetryRecord:
    # 503, retried on the same model, 503 again, then the next model answers.
    return record(
        model=CLAUDE,
        provider="anthropic",
        status=200,
        end_ns=at(1500),
        first_token_ns=at(1490),
        input_tokens=50,
        output_tokens=10,
        attempts=[attempt(GPT, "HTTP 503"), attempt(GPT, "HTTP 503"), attempt(CLAUDE, "ok")],
    )


def router_fallback() -> TelemetryRecord:
    return record(
        model=GPT,
        provider="openai",
        status=200,
        routing=RoutingRecord(
            "2" * 16,
            at(0),
            at(2000),
            None,
            [],
            "plano-router",
            2000.0,
            fallback="plano-router: no answer within 2s",
        ),
        attempts=[attempt(GPT, "ok")],
    )


def bad_request() -> TelemetryRecord:
    return record(status=400, end_ns=at(3), error="messages: field required")


def parse(body: bytes) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def series(samples: Samples, name: str) -> dict[frozenset, float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def scrape(metrics: GatewayMetrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return parse(body)


def request_labels(model: str, provider: str, status: str, route: str = "none") -> dict:
    return {
        "listener": "llm",
        "api": "openai_chat",
        "model": model,
        "provider": provider,
        "route": route,
        "status": status,
    }


def test_passthrough_success():
    metrics = GatewayMetrics()
    metrics.observe(passthrough_ok())
    s = scrape(metrics)

    assert get(s, "plano_requests_total", **request_labels(GPT, "openai", "200")) == 1
    duration = {"listener": "llm", "api": "openai_chat", "model": GPT}
    assert get(s, "plano_request_duration_seconds_count", **duration) == 1
    assert get(s, "plano_request_duration_seconds_sum", **duration) == pytest.approx(0.8)
    assert get(s, "plano_request_duration_seconds_bucket", le="0.5", **duration) == 0
    assert get(s, "plano_request_duration_seconds_bucket", le="1.0", **duration) == 1
    assert get(s, "plano_time_to_first_token_seconds_sum", model=GPT) == pytest.approx(0.79)
    # A JSON answer arrives whole: no time between its tokens to measure.
    assert series(s, "plano_time_per_output_token_seconds_count") == {}
    assert get(s, "plano_output_tokens_per_second_sum", model=GPT) == pytest.approx(40 / 0.8)
    assert get(s, "plano_input_sequence_length_tokens_sum", model=GPT) == 120
    assert get(s, "plano_input_sequence_length_tokens_bucket", le="128.0", model=GPT) == 1
    assert get(s, "plano_input_sequence_length_tokens_bucket", le="64.0", model=GPT) == 0
    assert get(s, "plano_output_sequence_length_tokens_sum", model=GPT) == 40
    tokens = {"model": GPT, "provider": "openai"}
    assert get(s, "plano_tokens_total", type="input", **tokens) == 120
    assert get(s, "plano_tokens_total", type="output", **tokens) == 40
    assert get(s, "plano_tokens_total", type="cached_input", **tokens) == 64
    assert len(series(s, "plano_tokens_total")) == 3  # no reasoning reported, none counted
    attempts = {"model": GPT, "provider": "openai"}
    assert get(s, "plano_upstream_attempts_total", outcome="ok", **attempts) == 1
    assert series(s, "plano_upstream_errors_total") == {}
    assert series(s, "plano_upstream_retries_total") == {}
    assert series(s, "plano_failovers_total") == {}
    assert series(s, "plano_router_decisions_total") == {}
    assert series(s, "plano_cost_usd_total") == {}
    assert get(s, "plano_telemetry_dropped_total") == 0


def test_stream_time_to_first_token_and_per_output_token():
    metrics = GatewayMetrics()
    metrics.observe(stream_ok())
    metrics.observe(stream_ok())
    s = scrape(metrics)

    assert get(s, "plano_requests_total", **request_labels(GPT, "openai", "200")) == 2
    assert get(s, "plano_time_to_first_token_seconds_count", model=GPT) == 2
    assert get(s, "plano_time_to_first_token_seconds_sum", model=GPT) == pytest.approx(0.3)
    assert get(s, "plano_time_to_first_token_seconds_bucket", le="0.1", model=GPT) == 0
    assert get(s, "plano_time_to_first_token_seconds_bucket", le="0.2", model=GPT) == 2
    # 100 tokens after the first in 2 s: 20 ms each.
    assert get(s, "plano_time_per_output_token_seconds_count", model=GPT) == 2
    assert get(s, "plano_time_per_output_token_seconds_sum", model=GPT) == pytest.approx(0.04)
    assert get(s, "plano_time_per_output_token_seconds_bucket", le="0.02", model=GPT) == 2
    assert get(s, "plano_time_per_output_token_seconds_bucket", le="0.01", model=GPT) == 0
    assert get(s, "plano_output_tokens_per_second_sum", model=GPT) == pytest.approx(2 * 101 / 2.15)
    tokens = {"model": GPT, "provider": "openai"}
    assert get(s, "plano_tokens_total", type="reasoning", **tokens) == 40
    assert get(s, "plano_tokens_total", type="output", **tokens) == 202


def test_single_token_stream_has_no_time_per_output_token():
    metrics = GatewayMetrics()
    metrics.observe(dataclasses.replace(stream_ok(), output_tokens=1))
    s = scrape(metrics)
    assert series(s, "plano_time_per_output_token_seconds_count") == {}
    assert get(s, "plano_time_to_first_token_seconds_count", model=GPT) == 1


def test_failover_counts_attempts_errors_retries_and_the_move():
    metrics = GatewayMetrics()
    metrics.observe(failover())
    s = scrape(metrics)

    assert get(s, "plano_requests_total", **request_labels(CLAUDE, "anthropic", "200")) == 1
    gpt = {"model": GPT, "provider": "openai"}
    claude = {"model": CLAUDE, "provider": "anthropic"}
    assert get(s, "plano_upstream_attempts_total", outcome="http_503", **gpt) == 2
    assert get(s, "plano_upstream_attempts_total", outcome="ok", **claude) == 1
    assert len(series(s, "plano_upstream_attempts_total")) == 2
    assert series(s, "plano_upstream_errors_total") == {
        frozenset(dict(outcome="http_503", **gpt).items()): 2
    }
    assert series(s, "plano_upstream_retries_total") == {frozenset({("model", GPT)}): 1}
    assert series(s, "plano_failovers_total") == {
        frozenset({("from_model", GPT), ("to_model", CLAUDE)}): 1
    }
    # Histograms follow the model that answered, not the ones that failed.
    claude_duration = {"listener": "llm", "api": "openai_chat", "model": CLAUDE}
    assert get(s, "plano_request_duration_seconds_count", **claude_duration) == 1
    assert series(s, "plano_time_to_first_token_seconds_count") == {
        frozenset({("model", CLAUDE)}): 1
    }


def test_retry_that_succeeds_on_the_same_model_is_no_failover():
    metrics = GatewayMetrics()
    metrics.observe(
        record(
            model=GPT,
            provider="openai",
            status=200,
            attempts=[attempt(GPT, "connect error"), attempt(GPT, "ok")],
        )
    )
    s = scrape(metrics)
    gpt = {"model": GPT, "provider": "openai"}
    assert get(s, "plano_upstream_errors_total", outcome="connect_error", **gpt) == 1
    assert get(s, "plano_upstream_retries_total", model=GPT) == 1
    assert series(s, "plano_failovers_total") == {}


def test_router_fallback():
    metrics = GatewayMetrics()
    metrics.observe(router_fallback())
    s = scrape(metrics)

    assert get(s, "plano_requests_total", **request_labels(GPT, "openai", "200")) == 1
    assert series(s, "plano_router_decisions_total") == {
        frozenset({("route", "none"), ("backend", "plano-router"), ("outcome", "fallback")}): 1
    }
    assert series(s, "plano_router_fallbacks_total") == {
        frozenset({("backend", "plano-router"), ("reason", "timeout")}): 1
    }
    backend = {"backend": "plano-router"}
    assert get(s, "plano_router_decision_duration_seconds_count", **backend) == 1
    assert get(s, "plano_router_decision_duration_seconds_sum", **backend) == pytest.approx(2.0)
    assert get(s, "plano_router_decision_duration_seconds_bucket", le="1.0", **backend) == 0
    assert get(s, "plano_router_decision_duration_seconds_bucket", le="2.5", **backend) == 1


def test_router_outcomes_one_per_decision():
    metrics = GatewayMetrics()

    def routed(route: str | None, **flags) -> TelemetryRecord:
        routing = RoutingRecord("2" * 16, at(0), at(1), route, [GPT], "embedded", 0.8, **flags)
        return record(model=GPT, provider="openai", status=200, routing=routing)

    metrics.observe(routed("code"))
    metrics.observe(routed("code", cached=True))
    metrics.observe(routed("code", cached=True))
    metrics.observe(routed("code", pinned=True, cached=True))
    metrics.observe(routed(None))
    metrics.observe(routed(None, fallback="Ollama is not running at http://localhost:11434"))
    s = scrape(metrics)

    def decisions(route: str, outcome: str) -> float:
        name = "plano_router_decisions_total"
        return get(s, name, route=route, backend="embedded", outcome=outcome)

    assert decisions("code", "routed") == 1
    assert decisions("code", "cached") == 2
    assert decisions("code", "pinned") == 1
    assert decisions("none", "no_route") == 1
    assert decisions("none", "fallback") == 1
    assert len(series(s, "plano_router_decisions_total")) == 5
    assert get(s, "plano_router_fallbacks_total", backend="embedded", reason="unavailable") == 1
    assert get(s, "plano_router_decision_duration_seconds_count", backend="embedded") == 6
    assert get(s, "plano_router_decision_duration_seconds_sum", backend="embedded") == (
        pytest.approx(6 * 0.0008)
    )
    bucket = "plano_router_decision_duration_seconds_bucket"
    assert get(s, bucket, le="0.0005", backend="embedded") == 0
    assert get(s, bucket, le="0.001", backend="embedded") == 6
    code = request_labels(GPT, "openai", "200", route="code")
    assert get(s, "plano_requests_total", **code) == 4


def test_router_outcome_precedence():
    assert router_outcome(fallback=True, pinned=True, cached=True, routed=True) == "fallback"
    assert router_outcome(fallback=False, pinned=True, cached=True, routed=True) == "pinned"
    assert router_outcome(fallback=False, pinned=False, cached=True, routed=False) == "cached"
    assert router_outcome(fallback=False, pinned=False, cached=False, routed=True) == "routed"
    assert router_outcome(fallback=False, pinned=False, cached=False, routed=False) == "no_route"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        # The strings proxy/routing/backends/* and service.py produce.
        ("plano-router: no answer within 2s", "timeout"),
        ("ollama: no answer within 3s", "timeout"),
        ("TimeoutError: ", "timeout"),
        (
            "Ollama is not running at http://localhost:11434: install it from ollama.com",
            "unavailable",
        ),
        (
            "Ollama is not reachable at http://localhost:11434: [Errno 111] Connect call failed",
            "unavailable",
        ),
        (
            "plano-router: ClientConnectorError: Cannot connect to host 127.0.0.1:9 ssl:default",
            "unavailable",
        ),
        (
            "the router model qwen3:0.6b is not in Ollama at http://h:11434; run `ollama pull`",
            "unavailable",
        ),
        ("ollama could not load qwen3:0.6b: out of memory", "unavailable"),
        ("the embedded router needs the all-MiniLM-L6-v2 model: pip install x", "unavailable"),
        ("embedded router model directory /x does not exist; fix the path", "unavailable"),
        ("plano-router: HTTP 500 from the router endpoint", "error"),
        ("plano-router: the router endpoint sent a malformed reply", "error"),
        ("ollama: no JSON object in the router's answer: 'hmm'", "error"),
        ("KeyError: 'choices'", "error"),
        ("something odd", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_fallback_reasons_are_bounded(reason, expected):
    assert fallback_reason(reason) == expected


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("ok", "ok"),
        ("HTTP 503", "http_503"),
        ("HTTP 429", "http_429"),
        ("timeout", "timeout"),
        ("connect timeout", "connect_timeout"),
        ("connect error", "connect_error"),
        ("read error", "read_error"),
        ("malformed response", "malformed_response"),
        ("stream error", "stream_error"),
        ("openai/gpt-4o: HTTP 503: overloaded", "other"),
        ("", "other"),
    ],
)
def test_attempt_outcomes_are_bounded(outcome, expected):
    assert outcome_label(outcome) == expected


def test_client_error_has_no_model():
    metrics = GatewayMetrics()
    metrics.observe(bad_request())
    s = scrape(metrics)

    assert series(s, "plano_requests_total") == {
        frozenset(request_labels("none", "none", "400").items()): 1
    }
    duration = {"listener": "llm", "api": "openai_chat", "model": "none"}
    assert get(s, "plano_request_duration_seconds_count", **duration) == 1
    assert get(s, "plano_request_duration_seconds_sum", **duration) == pytest.approx(0.003)
    for name in (
        "plano_time_to_first_token_seconds_count",
        "plano_output_tokens_per_second_count",
        "plano_input_sequence_length_tokens_count",
        "plano_tokens_total",
        "plano_upstream_attempts_total",
        "plano_cost_usd_total",
    ):
        assert series(s, name) == {}, name


def test_cost_signals_and_dropped():
    metrics = GatewayMetrics()
    metrics.observe(
        passthrough_ok(), cost_usd=0.0125, signal_quality="good", signal_types=["gratitude"]
    )
    metrics.observe(
        stream_ok(),
        cost_usd=0.0375,
        signal_quality="poor",
        signal_types=["correction", "gratitude"],
    )
    metrics.observe(failover(), cost_usd=None)
    metrics.observe(bad_request(), cost_usd=0.0)
    metrics.observe_dropped(3)
    metrics.observe_dropped(0)
    metrics.observe_dropped(2)
    s = scrape(metrics)

    assert get(s, "plano_cost_usd_total", model=GPT, provider="openai") == pytest.approx(0.05)
    assert get(s, "plano_cost_usd_total", model="none", provider="none") == 0
    assert len(series(s, "plano_cost_usd_total")) == 2
    assert series(s, "plano_signals_total") == {
        frozenset({("type", "gratitude")}): 2,
        frozenset({("type", "correction")}): 1,
    }
    assert series(s, "plano_signal_quality_total") == {
        frozenset({("quality", "good")}): 1,
        frozenset({("quality", "poor")}): 1,
    }
    assert get(s, "plano_telemetry_dropped_total") == 5


def test_no_label_carries_a_request_id_session_or_client_text():
    metrics = GatewayMetrics()
    for make in (passthrough_ok, stream_ok, failover, router_fallback, bad_request):
        metrics.observe(make(), cost_usd=0.01, signal_quality="neutral", signal_types=["praise"])
    body, _ = metrics.render()
    om_body, _ = metrics.render("application/openmetrics-text; version=1.0.0")
    values = {v for (_, labels) in parse(body) for _, v in labels}
    assert GPT in values  # the scan below does look at real label values
    for value in values:
        for secret in (REQUEST_ID, SESSION, TRACE_ID, "user-12345", "my-client-alias"):
            assert secret not in value
    for text in (body, om_body):
        for secret in (REQUEST_ID, SESSION, TRACE_ID, "user-12345", "messages: field"):
            assert secret.encode() not in text


def test_label_values_are_sanitized_and_capped():
    metrics = GatewayMetrics()
    long_model = "openai/" + "x" * 300
    metrics.observe(
        record(model=long_model, provider="open\nai", status=200, listener="", api="a\x00b")
    )
    s = scrape(metrics)
    [labels] = series(s, "plano_requests_total")
    labels = dict(labels)
    assert labels["model"] == long_model[:MAX_LABEL_CHARS]
    assert labels["provider"] == "open ai"
    assert labels["listener"] == "none"
    assert labels["api"] == "a b"
    assert all(len(v) <= MAX_LABEL_CHARS for v in labels.values())


def test_series_past_the_cap_collapse_to_other():
    metrics = GatewayMetrics(max_series=3)
    for i in range(5):
        metrics.observe(record(model=f"openai/m{i}", provider="openai", status=200))
    metrics.observe(record(model="openai/m0", provider="openai", status=200))
    s = scrape(metrics)
    requests = series(s, "plano_requests_total")
    assert len(requests) == 4  # three real series and the overflow
    overflow = frozenset((k, "other") for k in request_labels("", "", ""))
    assert requests[overflow] == 2
    assert requests[frozenset(request_labels("openai/m0", "openai", "200").items())] == 2


def test_label_children_are_cached():
    metrics = GatewayMetrics()
    metrics.observe(stream_ok())
    children = {id(c) for c in metrics.requests.children.values()}
    metrics.observe(stream_ok())
    assert {id(c) for c in metrics.requests.children.values()} == children
    assert len(metrics.requests.children) == 1


def test_exposition_has_no_created_series():
    metrics = GatewayMetrics()
    metrics.observe(passthrough_ok())
    for accept in (None, "application/openmetrics-text; version=1.0.0"):
        body, _ = metrics.render(accept)
        assert b"_created" not in body


def test_openmetrics_encoding():
    metrics = GatewayMetrics()
    metrics.observe(stream_ok(), cost_usd=0.02)
    metrics.observe(failover())
    metrics.observe_dropped(4)
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )  # what Prometheus 2.x sends
    body, content_type = metrics.render(accept)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    families = {f.name: f for f in openmetrics_families(body.decode())}

    requests = families["plano_requests"]
    assert requests.type == "counter"
    [sample] = [s for s in requests.samples if s.labels["model"] == GPT]
    assert sample.name == "plano_requests_total"
    assert sample.value == 1
    assert sample.labels == request_labels(GPT, "openai", "200")

    ttft = families["plano_time_to_first_token_seconds"]
    assert ttft.type == "histogram"
    assert ttft.unit == "seconds"
    count = {s.labels["model"]: s.value for s in ttft.samples if s.name.endswith("_count")}
    assert count == {GPT: 1, CLAUDE: 1}

    assert families["plano_input_sequence_length_tokens"].unit == "tokens"
    [dropped] = families["plano_telemetry_dropped"].samples
    assert (dropped.name, dropped.value) == ("plano_telemetry_dropped_total", 4)
    [cost] = families["plano_cost_usd"].samples
    assert cost.value == pytest.approx(0.02)
    failovers = families["plano_failovers"].samples
    assert [(s.labels, s.value) for s in failovers] == [
        ({"from_model": GPT, "to_model": CLAUDE}, 1)
    ]


def test_text_is_the_default_encoding():
    metrics = GatewayMetrics()
    for accept in (None, "", "*/*", "text/plain"):
        _, content_type = metrics.render(accept)
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"


def test_registry_is_private():
    from prometheus_client import REGISTRY

    first, second = GatewayMetrics(), GatewayMetrics()  # would clash in one shared registry
    first.observe(passthrough_ok())
    assert get(scrape(second), "plano_telemetry_dropped_total") == 0
    labels = request_labels(GPT, "openai", "200")
    assert REGISTRY.get_sample_value("plano_requests_total", labels) is None
