"""Affinity across instances: two gateways, one redis-server, the official SDKs in front.

A session pinned through one gateway keeps its route through the other; a Redis killed
mid-run and restarted is survived under both failure modes."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request

import anthropic
import openai
import orjson
import pytest
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams
from servers import RedisServer

from proxy.routing.pins import KEY_PREFIX
from proxy.telemetry.settings import WorkerSettings

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"
CODE = "Write a Python function that reverses a linked list, with unit tests."
REASONING = "Prove step by step that there are infinitely many prime numbers."
# The gateway's breaker skips a dead store for 1 s, then probes: recovery comes within this.
RECOVERY_S = 15.0


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


def config(upstreams, shared: str, routing: str = ""):
    """Two routes on the embedded router; `shared` and `routing` are flow mappings."""
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{name: m, type: model, port: 12000, max_retries: 0}}]
        model_providers:
          - {{model: openai/gpt-4o-mini, base_url: "{upstreams["openai"][1]}/v1",
              access_key: $OPENAI_KEY, default: true}}
          - {{model: openai/o3, base_url: "{upstreams["openai"][1]}/v1",
              access_key: $OPENAI_KEY}}
          - {{model: anthropic/claude-sonnet-4-6, base_url: "{upstreams["anthropic"][1]}",
              access_key: $ANTHROPIC_KEY}}
        routing_preferences:
          - name: code_generation
            description: writing new code, functions, classes, scripts and unit tests
            models: [anthropic/claude-sonnet-4-6]
          - name: complex_reasoning
            description: multi-step reasoning, math proofs, logic puzzles and careful analysis
            models: [openai/o3]
        shared_state: {shared}
        routing: {{router: {{backend: embedded}}{routing}}}
        """,
        env={"OPENAI_KEY": OPENAI_KEY, "ANTHROPIC_KEY": ANTHROPIC_KEY},
    )


def shared(redis: RedisServer, mode: str = "fail_open") -> str:
    return f"{{type: redis, url: '{redis.url}', on_unavailable: {mode}}}"


@contextlib.contextmanager
def two_gateways(cfg, telemetry: WorkerSettings | None = None):
    with ProxyThread(cfg, telemetry=telemetry) as first, ProxyThread(cfg) as second:
        yield first, second


def route_of(gateway, prompt: str, session: str | None, headers: dict | None = None) -> str:
    """The route the gateway took (x-plano-route), asked with the OpenAI SDK."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    extra = {"X-Model-Affinity": session} if session else {}
    raw = client.chat.completions.with_raw_response.create(
        model="none",
        messages=[{"role": "user", "content": prompt}],
        extra_headers={**extra, **(headers or {})},
    )
    return raw.headers["x-plano-route"]


def until(check, timeout_s: float = RECOVERY_S):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


# --- one session, two gateways ---------------------------------------------------------------


def test_a_session_pinned_on_one_gateway_is_honoured_on_the_other(upstreams, redis_server):
    with two_gateways(config(upstreams, shared(redis_server))) as (first, second):
        assert route_of(first, CODE, "session-1") == "code_generation"
        # The other gateway never saw this session: the pin comes from Redis.
        assert route_of(second, REASONING, "session-1") == "code_generation"
        assert route_of(second, REASONING, "session-2") == "complex_reasoning"
        assert route_of(first, CODE, "session-2") == "complex_reasoning"
    # Upstream's key, with the session's TTL.
    stored = redis_server.command("GET", KEY_PREFIX + "session-1")
    assert json.loads(stored.split(b"\r\n")[1])["route_name"] == "code_generation"
    ttl = int(redis_server.command("TTL", KEY_PREFIX + "session-1")[1:-2])
    assert 590 <= ttl <= 600  # routing.session_ttl_seconds, default 600


def test_an_explicit_session_cache_with_a_tenant_header(upstreams, redis_server):
    cache = f", session_cache: {{type: redis, url: '{redis_server.url}', tenant_header: x-t}}"
    cfg = config(upstreams, shared(redis_server), cache)
    with two_gateways(cfg) as (first, second):
        assert route_of(first, CODE, "s", {"x-t": "acme"}) == "code_generation"
        assert route_of(first, REASONING, "s", {"x-t": "globex"}) == "complex_reasoning"
        assert route_of(second, REASONING, "s", {"x-t": "acme"}) == "code_generation"
        assert route_of(second, CODE, "s", {"x-t": "globex"}) == "complex_reasoning"
    assert redis_server.command("EXISTS", KEY_PREFIX + "acme:s") == b":1\r\n"
    assert redis_server.command("EXISTS", KEY_PREFIX + "globex:s") == b":1\r\n"


def test_a_value_plano_did_not_write_is_no_pin(upstreams, redis_server):
    for junk in ("not json", "[1, 2]", '{"route_name": 5}'):
        redis_server.command("SET", KEY_PREFIX + "odd", junk)
        with ProxyThread(config(upstreams, shared(redis_server))) as gateway:
            assert route_of(gateway, REASONING, "odd") == "complex_reasoning"


# --- Redis killed mid-run, then restarted ----------------------------------------------------


def _pin_holds_across(first, second, session: str) -> bool:
    return (
        route_of(first, CODE, session) == "code_generation"
        and route_of(second, REASONING, session) == "code_generation"
    )


def test_fail_open_keeps_serving_while_redis_is_down_and_recovers(upstreams, redis_server):
    with two_gateways(config(upstreams, shared(redis_server))) as (first, second):
        assert _pin_holds_across(first, second, "before")
        redis_server.kill()
        # Served, routed afresh: the pin cannot be read, and the request does not fail.
        assert route_of(second, REASONING, "before") == "complex_reasoning"
        assert route_of(first, CODE, "during") == "code_generation"
        redis_server.restart()  # empty: the pins made before are gone
        sessions = iter(range(1000))
        assert until(lambda: _pin_holds_across(first, second, f"after-{next(sessions)}"))


def test_fail_closed_answers_503_in_the_clients_shape_and_recovers(upstreams, redis_server):
    cfg = config(upstreams, shared(redis_server, "fail_closed"))
    with two_gateways(cfg) as (first, second):
        assert _pin_holds_across(first, second, "before")
        redis_server.kill()
        with pytest.raises(openai.APIStatusError) as caught:
            route_of(first, CODE, "before")
        assert caught.value.status_code == 503
        assert caught.value.response.headers["retry-after"] == "1"
        error = caught.value.response.json()["error"]
        assert "shared store" in error["message"]
        assert redis_server.url not in error["message"]
        claude = anthropic.Anthropic(base_url=second.url, api_key="k", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as refused:
            claude.messages.create(
                model="none",
                max_tokens=20,
                messages=[{"role": "user", "content": CODE}],
                extra_headers={"X-Model-Affinity": "before"},
            )
        assert refused.value.status_code == 503
        assert refused.value.response.json()["type"] == "error"
        code, body = _post_routing(second, "before")
        assert code == 503
        assert "shared store" in body["error"]["message"]
        # A request that does not need the store is served.
        assert route_of(first, CODE, None) == "code_generation"

        redis_server.restart()

        def pinned_again() -> bool:
            with contextlib.suppress(openai.APIStatusError):
                return _pin_holds_across(first, second, f"after-{time.monotonic_ns()}")
            return False

        assert until(pinned_again)


def _post_routing(gateway, session: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{gateway.url}/routing/v1/chat/completions",
        data=orjson.dumps({"model": "none", "messages": [{"role": "user", "content": CODE}]}),
        headers={"Content-Type": "application/json", "X-Model-Affinity": session},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


# --- /metrics --------------------------------------------------------------------------------


def _metrics(gateway) -> str:
    with urllib.request.urlopen(f"{gateway.server.admin_url}/metrics", timeout=10) as response:
        return response.read().decode()


def test_metrics_show_the_store_down_and_its_errors_then_up_again(
    upstreams, redis_server, tmp_path
):
    telemetry = WorkerSettings(store_path=str(tmp_path / "traces.db"), admin_port=0)
    cfg = config(upstreams, shared(redis_server))
    with ProxyThread(cfg, telemetry=telemetry) as gateway:
        up = 'plano_shared_state_up{store="redis"} 1.0'
        assert until(lambda: up in _metrics(gateway))
        redis_server.kill()
        route_of(gateway, CODE, "m-1")
        down = 'plano_shared_state_up{store="redis"} 0.0'
        assert until(lambda: down in _metrics(gateway))
        text = _metrics(gateway)
        assert 'plano_shared_state_errors_total{op="affinity_get",store="redis"}' in text
        redis_server.restart()
        assert until(lambda: route_of(gateway, CODE, "m-2") and up in _metrics(gateway))
