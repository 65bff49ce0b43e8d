"""`ratelimits` end to end: the official SDKs -> the real proxy -> stand-in providers."""

from __future__ import annotations

import asyncio
import textwrap
import time

import anthropic
import openai
import pytest
from fakes.providers import text_reply
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams
from raw_http import RawClient, error_message

from proxy.config.model import Secret, SharedStateSettings
from proxy.limits.buckets import MemoryBuckets
from proxy.limits.redis_buckets import RedisBuckets
from proxy.server.model_app import GATEWAY
from proxy.state.shared import SharedState
from proxy.telemetry.metrics import GatewayMetrics
from proxy.telemetry.record import RateLimitRecord, TelemetryRecord

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"
LONG_ANSWER = " ".join(["word"] * 400)  # the stand-in reports one output token a word


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


@pytest.fixture
def fakes(upstreams):
    for state, _ in upstreams.values():
        state.clear()
    return {name: state for name, (state, _) in upstreams.items()}


def limited_config(upstreams, limits: str):
    oa_url, an_url = upstreams["openai"][1], upstreams["anthropic"][1]
    head = textwrap.dedent(
        f"""\
        version: v0.4.0
        listeners: [{{name: m, type: model, port: 12000, max_retries: 0}}]
        model_providers:
          - {{model: openai/gpt-4o, base_url: "{oa_url}/v1", access_key: $OA, default: true}}
          - {{model: anthropic/claude-sonnet-4-6, base_url: "{an_url}", access_key: $AN}}
        model_aliases:
          fast: {{target: openai/gpt-4o}}
        ratelimits:
        """
    )
    return config_from_yaml(head + limits, env={"OA": OPENAI_KEY, "AN": ANTHROPIC_KEY})


TEAM_BUDGET = """\
  - model: openai/gpt-4o
    selector: {key: x-team}
    limit: {tokens: 500, unit: hour}
  - model: anthropic/claude-sonnet-4-6
    selector: {key: x-team, value: blue}
    limit: {tokens: 500, unit: hour}
"""


def team(name: str) -> dict[str, str]:
    return {"x-arch-ratelimit-selector": "x-team", "x-team": name}


def oa(proxy: ProxyThread, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, **kwargs)


def ask(client: openai.OpenAI, words: int, headers: dict, model: str = "openai/gpt-4o", **kw):
    return client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": " ".join(["hello"] * words)}],
        extra_headers=headers,
        **kw,
    )


@pytest.fixture
def proxy(upstreams, fakes):
    exchanges = []
    with ProxyThread(limited_config(upstreams, TEAM_BUDGET), observers=[exchanges.append]) as p:
        p.exchanges = exchanges
        yield p


def test_under_budget_passes_with_openai_headers_then_429_with_retry_after(proxy):
    client = oa(proxy)
    ok = ask(client, 100, team("red"))
    assert ok.http_response.status_code == 200
    assert ok.headers["x-ratelimit-limit-tokens"] == "500"
    first_remaining = int(ok.headers["x-ratelimit-remaining-tokens"])
    # 100 words of "hello" are 100 o200k tokens, plus the message framing (3 + 3 + "user").
    assert first_remaining == 500 - 107
    assert ok.headers["x-ratelimit-reset-tokens"].endswith("s")
    ask(client, 200, team("red"))  # more than half spent with the output debits
    with pytest.raises(openai.RateLimitError) as denied:
        ask(client, 300, team("red"))
    response = denied.value.response
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "x-team" in error["message"]
    assert "openai/gpt-4o" in error["message"]
    assert int(response.headers["retry-after"]) >= 1
    assert int(response.headers["retry-after-ms"]) > 0
    assert response.headers["x-ratelimit-limit-tokens"] == "500"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 308
    assert response.headers["x-ratelimit-reset-tokens"].endswith("s")
    # The refused request never reached the provider.
    assert len(proxy.exchanges) == 3
    assert proxy.exchanges[-1].ratelimit.limited
    assert proxy.exchanges[-1].attempts == []


def test_each_header_value_has_its_own_budget(proxy, fakes):
    client = oa(proxy)
    fakes["openai"].push(text_reply(LONG_ANSWER))
    ask(client, 50, team("red"))
    with pytest.raises(openai.RateLimitError):
        ask(client, 50, team("red"))
    assert ask(client, 50, team("green")).http_response.status_code == 200


def test_output_tokens_are_debited_when_the_answer_ends(proxy, fakes):
    client = oa(proxy)
    fakes["openai"].push(text_reply(LONG_ANSWER))
    first = ask(client, 5, team("blue"))
    # Input alone left ~486 of 500: the answer's 400 tokens came off after it.
    assert int(first.headers["x-ratelimit-remaining-tokens"]) > 480
    with pytest.raises(openai.RateLimitError):
        ask(client, 100, team("blue"))
    assert ask(client, 5, team("blue")).http_response.status_code == 200


def test_output_of_a_stream_is_debited_too(proxy, fakes):
    client = oa(proxy)
    fakes["openai"].push(text_reply(LONG_ANSWER))
    stream = client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "tell me a story"}],
        stream=True,
        extra_headers=team("stream"),
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.split() == LONG_ANSWER.split()
    with pytest.raises(openai.RateLimitError):
        ask(client, 100, team("stream"))


def test_an_alias_counts_against_its_targets_budget(proxy):
    client = oa(proxy)
    ask(client, 300, team("alias"), model="fast")
    with pytest.raises(openai.RateLimitError) as denied:
        ask(client, 300, team("alias"), model="openai/gpt-4o")
    assert "openai/gpt-4o" in denied.value.response.json()["error"]["message"]


def test_anthropic_clients_get_anthropics_error_shape(proxy, fakes):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0)
    fakes["anthropic"].push(text_reply(LONG_ANSWER))
    kwargs = {"model": "anthropic/claude-sonnet-4-6", "max_tokens": 600}
    message = [{"role": "user", "content": "hello"}]
    client.messages.create(messages=message, extra_headers=team("blue"), **kwargs)
    longer = [{"role": "user", "content": " ".join(["hello"] * 100)}]
    with pytest.raises(anthropic.RateLimitError) as denied:
        client.messages.create(messages=longer, extra_headers=team("blue"), **kwargs)
    body = denied.value.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert denied.value.response.headers["retry-after"]
    # Only x-team: blue is limited on this model: another team is not.
    assert client.messages.create(messages=message, extra_headers=team("red"), **kwargs)


def test_requests_without_the_opt_in_or_with_unknown_selectors_are_not_limited(proxy):
    client = oa(proxy)
    plain = ask(client, 10, {})
    assert "x-ratelimit-limit-tokens" not in plain.headers
    other = ask(client, 10, {"x-arch-ratelimit-selector": "x-nobody", "x-nobody": "a"})
    assert "x-ratelimit-limit-tokens" not in other.headers


def test_a_request_larger_than_the_whole_budget_says_so(proxy):
    with pytest.raises(openai.RateLimitError) as denied:
        ask(oa(proxy), 600, team("huge"))
    assert "more than the whole budget of 500" in denied.value.response.json()["error"]["message"]


BODY = b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ([("x-team", b"\xff\xfe")], "not valid UTF-8"),
        ([("x-team", "v" * 4000)], "at most 256"),
        ([("x-team", "a"), ("x-team", "b")], "send one x-team header"),
        ([("x-arch-ratelimit-selector", "x-team")], "send one x-arch-ratelimit-selector"),
    ],
)
def test_hostile_selector_headers_get_a_clear_400(proxy, path, headers, says):
    raw = RawClient(int(proxy.url.rsplit(":", 1)[1]))
    body = BODY if path.endswith("completions") else BODY[:-1] + b', "max_tokens": 5}'
    sent = [("x-arch-ratelimit-selector", "x-team"), *headers, ("content-type", "application/json")]
    reply = raw.request("POST", path, body, sent)
    raw.close()
    assert reply.status == 400
    assert says in error_message(path, reply)


def test_many_headers_are_refused_cleanly_not_500(proxy):
    raw = RawClient(int(proxy.url.rsplit(":", 1)[1]))
    sent = [("x-arch-ratelimit-selector", "x-team"), ("x-team", "a")]
    sent += [(f"x-junk-{i}", "v") for i in range(500)]
    reply = raw.request("POST", "/v1/chat/completions", BODY, sent)
    raw.close()
    assert 400 <= reply.status < 500
    error_message("/v1/chat/completions", reply)


def two_proxies_sharing(upstreams, buckets):
    """Two gateways (two instances of a deployment) drawing on the same budget store."""
    config = limited_config(upstreams, TEAM_BUDGET)
    first, second = ProxyThread(config), ProxyThread(config)
    for proxy in (first, second):
        proxy.__enter__()
        for runner in proxy.server._runners:
            runner.app[GATEWAY].limiter.buckets = buckets
    return first, second


def test_two_gateways_share_one_budget_in_one_store(upstreams, fakes):
    first, second = two_proxies_sharing(upstreams, MemoryBuckets())
    try:
        ask(oa(first), 300, team("shared"))
        with pytest.raises(openai.RateLimitError):
            ask(oa(second), 300, team("shared"))
    finally:
        first.stop()
        second.stop()


def redis_budget(upstreams, redis_server, mode: str = "fail_open"):
    shared = f"shared_state: {{type: redis, url: '{redis_server.url}', on_unavailable: {mode}}}\n"
    return limited_config(upstreams, TEAM_BUDGET + shared)


def test_two_gateways_share_one_budget_through_redis(upstreams, fakes, redis_server):
    """`shared_state: {type: redis}` in both configs: the budget is one, in Redis."""
    config = redis_budget(upstreams, redis_server)
    with ProxyThread(config) as first, ProxyThread(config) as second:
        spent = ask(oa(first), 300, team("shared"))
        assert int(spent.headers["x-ratelimit-remaining-tokens"]) < 500 - 300
        with pytest.raises(openai.RateLimitError) as denied:
            ask(oa(second), 300, team("shared"))
        assert denied.value.response.headers["Retry-After"]
        # Another team's bucket on the same store is untouched.
        ask(oa(second), 300, team("other"))


@pytest.mark.parametrize(("mode", "status"), [("fail_open", 200), ("fail_closed", 503)])
def test_a_dead_redis_follows_on_unavailable_then_recovers(
    upstreams, fakes, redis_server, mode, status
):
    with ProxyThread(redis_budget(upstreams, redis_server, mode)) as proxy:
        ask(oa(proxy), 10, team("blue"))
        redis_server.kill()
        if status == 200:
            assert ask(oa(proxy), 10, team("blue")).http_response.status_code == 200
        else:
            with pytest.raises(openai.APIStatusError) as refused:
                ask(oa(proxy), 10, team("blue"))
            assert refused.value.status_code == 503
            assert "redis" in refused.value.response.json()["error"]["message"]
        redis_server.restart()
        deadline = time.monotonic() + 10
        while True:  # the breaker probes again about a second after the failure
            try:
                reply = ask(oa(proxy), 10, team("blue"))
                # fail_open's stand-in answer reports the whole budget; Redis's is less.
                if int(reply.headers["x-ratelimit-remaining-tokens"]) < 500:
                    break
            except openai.APIStatusError:
                pass
            assert time.monotonic() < deadline, "the budget did not come back to Redis"
            time.sleep(0.2)
        # Counting is back: the bucket lives in Redis again and fills up.
        statuses = []
        for _ in range(10):
            try:
                statuses.append(ask(oa(proxy), 100, team("blue")).http_response.status_code)
            except openai.RateLimitError:
                statuses.append(429)
        assert 429 in statuses


def test_metrics_count_refusals_per_configured_limit():
    metrics = GatewayMetrics()
    base = {
        "trace_id": "0" * 32,
        "span_id": "0" * 16,
        "sampled": False,
        "start_ns": 0,
        "end_ns": 1,
        "request_id": "r",
        "listener": "m",
        "api": "openai_chat",
        "path": "/v1/chat/completions",
    }
    for limited, remaining in ((False, 120), (True, 7)):
        mark = RateLimitRecord("openai/gpt-4o", "x-team", limited, 500, remaining)
        metrics.observe(TelemetryRecord(**base, status=429 if limited else 200, ratelimit=mark))
    text = metrics.render()[0].decode()
    labels = 'listener="m",model="openai/gpt-4o",selector="x-team"'
    assert f"plano_ratelimited_requests_total{{{labels}}} 1.0" in text
    assert f"plano_ratelimit_remaining_tokens{{{labels}}} 7.0" in text


NESTED_BUDGETS = """\
  - model: openai/gpt-4o
    selector: {key: x-team}
    limit: {tokens: 2000, unit: hour}
  - model: openai/gpt-4o
    selector: {key: x-team, value: red}
    limit: {tokens: 150, unit: hour}
"""
WIDE_BUCKET = "0:x-team:red"  # the first entry's bucket for team red


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_refusal_by_a_narrow_budget_gives_back_what_the_wide_one_took(
    upstreams, fakes, request, store
):
    """Admission is all or nothing: team red's own budget refusing a request must not leave
    the request's tokens taken from the team-wide budget listed before it."""
    if store == "redis":
        server = request.getfixturevalue("redis_server")
        limits = NESTED_BUDGETS + f"shared_state: {{type: redis, url: '{server.url}'}}\n"

        async def wide_remaining() -> int:
            shared = SharedState(SharedStateSettings(url=Secret(server.url), timeout_s=2.0))
            await shared.open()
            try:
                return (await RedisBuckets(shared).take(WIDE_BUCKET, 0, 2000, 3600.0)).remaining
            finally:
                await shared.close()
    else:
        limits, buckets = NESTED_BUDGETS, MemoryBuckets()

        async def wide_remaining() -> int:
            return (await buckets.take(WIDE_BUCKET, 0, 2000, 3600.0)).remaining

    with ProxyThread(limited_config(upstreams, limits)) as proxy:
        if store == "memory":
            for runner in proxy.server._runners:
                runner.app[GATEWAY].limiter.buckets = buckets
        client = oa(proxy)
        assert ask(client, 100, team("red")).http_response.status_code == 200
        before = asyncio.run(wide_remaining())
        assert before <= 2000 - 107  # the first request was taken from the wide budget
        with pytest.raises(openai.RateLimitError) as denied:
            ask(client, 100, team("red"))
        assert "x-team=red" in denied.value.response.json()["error"]["message"]
        # The wide budget refills one token every 1.8 s: it may only have grown.
        assert asyncio.run(wide_remaining()) >= before
