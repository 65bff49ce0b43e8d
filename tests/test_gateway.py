"""The gateway end to end: official SDKs -> the real proxy -> stand-in providers."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import anthropic
import openai
import pytest
from fakes.providers import (
    hang,
    malformed_json,
    reset_mid_stream,
    slow,
    status,
)
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"],
}


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


@pytest.fixture
def fakes(upstreams):
    for state, _ in upstreams.values():
        state.clear()
        state.cached_tokens = 0
    return {name: state for name, (state, _) in upstreams.items()}


def gateway_config(upstreams, retries: int = 2, timeout: str = "5s"):
    oa_url, an_url = upstreams["openai"][1], upstreams["anthropic"][1]
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{name: m, type: model, port: 12000, max_retries: {retries},
                     timeout: {timeout}}}]
        model_providers:
          - model: openai/gpt-4o
            base_url: {oa_url}/v1
            access_key: $OPENAI_KEY
            default: true
          - model: anthropic/claude-sonnet-4-6
            base_url: {an_url}
            access_key: $ANTHROPIC_KEY
          - model: openai/gpt-4o-mini
            base_url: {oa_url}/v1
            access_key: $OPENAI_KEY
        model_aliases:
          smart: {{target: gpt-4o, fallbacks: [anthropic/claude-sonnet-4-6]}}
          claude: {{target: claude-sonnet-4-6}}
        """,
        env={"OPENAI_KEY": OPENAI_KEY, "ANTHROPIC_KEY": ANTHROPIC_KEY},
    )


@pytest.fixture
def proxy(upstreams, fakes):
    with ProxyThread(gateway_config(upstreams)) as running:
        yield running


def oa_client(proxy, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="client-key", max_retries=0, **kw)


def an_client(proxy, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="client-key", max_retries=0, **kw)


UPSTREAM_MODEL = {"openai": "gpt-4o", "anthropic": "claude"}


# --- the matrix: {OpenAI, Anthropic client} x {OpenAI, Anthropic upstream} --------------


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_text(proxy, fakes, upstream, stream):
    client = oa_client(proxy)
    args = {
        "model": UPSTREAM_MODEL[upstream],
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"},
        ],
    }
    if stream:
        chunks = list(
            client.chat.completions.create(
                **args, stream=True, stream_options={"include_usage": True}
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = next(
            c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
        )
        usage = chunks[-1].usage
    else:
        reply = client.chat.completions.create(**args)
        text, finish, usage = (
            reply.choices[0].message.content,
            reply.choices[0].finish_reason,
            reply.usage,
        )
    assert text == "echo: hello there"
    assert finish == "stop"
    assert usage.completion_tokens == 3
    assert usage.prompt_tokens > 0
    sent = fakes[upstream].last.body
    assert sent["model"] == {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-6"}[upstream]
    if upstream == "anthropic":
        assert sent["system"] == "be brief"  # moved out of the messages, Anthropic style


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_openai_client_tools(proxy, fakes, upstream, stream):
    client = oa_client(proxy)
    args = {
        "model": UPSTREAM_MODEL[upstream],
        "tools": [WEATHER_TOOL_OPENAI],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "messages": [{"role": "user", "content": "weather in Paris"}],
    }
    if stream:
        chunks = list(
            client.chat.completions.create(
                **args, stream=True, stream_options={"include_usage": True}
            )
        )
        calls: dict[int, dict] = {}
        for chunk in chunks:
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "args": ""})
                call["id"] = call["id"] or delta.id
                call["name"] += (delta.function.name or "") if delta.function else ""
                call["args"] += (delta.function.arguments or "") if delta.function else ""
        finish = next(
            c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
        )
        (call,) = calls.values()
        name, arguments, call_id = call["name"], call["args"], call["id"]
        usage = chunks[-1].usage
    else:
        reply = client.chat.completions.create(**args)
        (tool_call,) = reply.choices[0].message.tool_calls
        name, arguments, call_id = (
            tool_call.function.name,
            tool_call.function.arguments,
            tool_call.id,
        )
        finish, usage = reply.choices[0].finish_reason, reply.usage
    assert name == "get_weather"
    assert json.loads(arguments) == {"echo": "weather in Paris"}
    assert call_id
    assert finish == "tool_calls"
    assert usage.completion_tokens > 0

    # the tool result goes back, and the model answers from it
    follow = client.chat.completions.create(
        model=UPSTREAM_MODEL[upstream],
        tools=[WEATHER_TOOL_OPENAI],
        messages=[
            {"role": "user", "content": "weather in Paris"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ],
    )
    assert follow.choices[0].message.content == "tool said: sunny"


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_client_text(proxy, fakes, upstream, stream):
    client = an_client(proxy)
    args = {
        "model": UPSTREAM_MODEL[upstream],
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hello there"}],
    }
    if stream:
        with client.messages.stream(**args) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**args)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 3
    if upstream == "openai":
        sent = fakes["openai"].last.body
        assert sent["messages"][0] == {"role": "system", "content": "be brief"}


@pytest.mark.parametrize("upstream", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_client_tools(proxy, fakes, upstream, stream):
    client = an_client(proxy)
    args = {
        "model": UPSTREAM_MODEL[upstream],
        "max_tokens": 100,
        "tools": [WEATHER_TOOL_ANTHROPIC],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "messages": [{"role": "user", "content": "weather in Paris"}],
    }
    if stream:
        with client.messages.stream(**args) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**args)
    (block,) = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "get_weather"
    assert block.input == {"echo": "weather in Paris"}
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens > 0
    follow = client.messages.create(
        model=UPSTREAM_MODEL[upstream],
        max_tokens=100,
        tools=[WEATHER_TOOL_ANTHROPIC],
        messages=[
            {"role": "user", "content": "weather in Paris"},
            {"role": "assistant", "content": [b.model_dump() for b in message.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
            },
        ],
    )
    assert follow.content[0].text == "tool said: sunny"


def test_length_stop_and_cached_tokens(proxy, fakes):
    fakes["openai"].cached_tokens = 2
    reply = oa_client(proxy).chat.completions.create(
        model="gpt-4o", max_tokens=2, messages=[{"role": "user", "content": "one two three"}]
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.prompt_tokens_details.cached_tokens == 2
    message = an_client(proxy).messages.create(
        model="gpt-4o", max_tokens=2, messages=[{"role": "user", "content": "one two three"}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.cache_read_input_tokens == 2


def test_images_reach_both_upstreams(proxy, fakes):
    image = "data:image/png;base64,iVBORw0KGgo="
    for model, upstream in (("gpt-4o", "openai"), ("claude", "anthropic")):
        oa_client(proxy).chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": image}},
                    ],
                }
            ],
        )
        parts = fakes[upstream].last.body["messages"][-1]["content"]
        if upstream == "openai":
            assert parts[1] == {"type": "image_url", "image_url": {"url": image}}
        else:
            assert parts[1]["source"] == {
                "type": "base64",
                "media_type": "image/png",
                "data": "iVBORw0KGgo=",
            }


async def test_async_clients(proxy):
    oa = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    an = anthropic.AsyncAnthropic(base_url=proxy.url, api_key="k", max_retries=0)
    reply, message = await asyncio.gather(
        oa.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hi"}]),
        an.messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        ),
    )
    assert reply.choices[0].message.content == "echo: hi"
    assert message.content[0].text == "echo: hi"
    stream = await oa.chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "a b"}]
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: a b"
    await oa.close()
    await an.close()


# --- passthrough ------------------------------------------------------------------------


def test_passthrough_rewrites_only_the_model(proxy, fakes):
    oa_client(proxy).chat.completions.create(
        model="smart",
        messages=[{"role": "user", "content": "x"}],
        temperature=0.3,
        seed=7,
        extra_body={"custom_vendor_field": {"a": 1}},
    )
    body = fakes["openai"].last.body
    assert body["model"] == "gpt-4o"
    assert body["seed"] == 7  # fields Plano does not model still reach the provider
    assert body["custom_vendor_field"] == {"a": 1}


def test_stream_usage_chunk_only_when_asked(proxy, fakes):
    chunks = list(
        oa_client(proxy).chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "x"}]
        )
    )
    assert all(c.usage is None for c in chunks)
    # ...although the proxy asked the provider for it, to record it
    assert fakes["openai"].last.body["stream_options"] == {"include_usage": True}


def test_auth_headers_per_provider(proxy, fakes):
    oa_client(proxy).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    assert fakes["openai"].last.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    oa_client(proxy).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "x"}]
    )
    headers = fakes["anthropic"].last.headers
    assert headers["x-api-key"] == ANTHROPIC_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers  # the client's own key never leaks upstream


# --- errors in the client's own shape -----------------------------------------------------


def test_unknown_model_is_a_400_in_each_shape(proxy):
    with pytest.raises(openai.BadRequestError) as oa_err:
        oa_client(proxy).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert oa_err.value.body["message"] == "Model 'nope' not found in configured providers"
    with pytest.raises(anthropic.BadRequestError) as an_err:
        an_client(proxy).messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert an_err.value.body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("/v1/chat/completions", b"[1, 2]", 400, "must be a JSON object"),
        ("/v1/chat/completions", b'{"model": "gpt-4o", "messages": "hi"}', 400, "messages"),
        ("/v1/chat/completions", b'{"model": 5, "messages": []}', 400, "model"),
        ("/v1/messages", b'{"model": "gpt-4o", "messages": []}', 400, "max_tokens"),
        ("/v1/messages", b"{not json", 400, "not valid JSON"),
    ],
)
def test_bad_bodies(proxy, path, body, status, needle):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        proxy.url + path, data=body, headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    payload = json.loads(info.value.read())
    assert info.value.code == status
    if path == "/v1/messages":
        assert payload["type"] == "error"
        assert needle in payload["error"]["message"]
    else:
        assert needle in payload["error"]["message"]
        assert payload["error"]["type"] == "invalid_request_error"


def test_oversize_body_is_413(proxy):
    import urllib.error
    import urllib.request

    from proxy.server.model_app import MAX_BODY_BYTES

    body = b'{"model": "gpt-4o", "pad": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    request = urllib.request.Request(
        proxy.url + "/v1/messages", data=body, headers={"content-type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 413
    assert json.loads(info.value.read())["error"]["type"] == "request_too_large"


def test_unknown_path_is_json(proxy):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(proxy.url + "/v1/nothing", timeout=5)
    assert info.value.code == 404
    assert "error" in json.loads(info.value.read())


def test_models_and_health(proxy):
    models = oa_client(proxy).models.list()
    names = [m.id for m in models.data]
    assert names == [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-6",
        "openai/gpt-4o-mini",
        "smart",
        "claude",
    ]
    import urllib.request

    health = json.loads(urllib.request.urlopen(proxy.url + "/healthz", timeout=5).read())
    assert health["status"] == "ok"


# --- resilience --------------------------------------------------------------------------


def test_retry_after_429_is_honoured(proxy, fakes):
    fakes["openai"].push(status(429, retry_after=1))
    started = time.perf_counter()
    reply = oa_client(proxy).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content == "echo: x"
    assert time.perf_counter() - started >= 1.0
    assert len(fakes["openai"].requests) == 2


def test_500_is_retried_on_the_same_model(proxy, fakes):
    fakes["openai"].push(status(500), status(503))
    reply = oa_client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content == "echo: x"
    assert [r.body["model"] for r in fakes["openai"].requests] == ["gpt-4o-mini"] * 3


def test_failover_to_the_next_model(proxy, fakes):
    fakes["openai"].push(status(500), status(500), status(500))
    reply = oa_client(proxy).chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.headers["x-plano-model"] == "anthropic/claude-sonnet-4-6"
    assert reply.parse().choices[0].message.content == "echo: x"
    assert len(fakes["openai"].requests) == 3  # 1 + max_retries on the first model
    assert len(fakes["anthropic"].requests) == 1


def test_malformed_json_is_retried(proxy, fakes):
    fakes["openai"].push(malformed_json())
    reply = oa_client(proxy).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}]
    )
    assert reply.choices[0].message.content == "echo: x"


def test_everything_failing_gives_a_clear_502(proxy, fakes):
    fakes["openai"].push(*[status(500)] * 3)
    fakes["anthropic"].push(*[status(503)] * 3)
    with pytest.raises(openai.InternalServerError) as info:
        oa_client(proxy).chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 502
    message = info.value.body["message"]
    assert message.startswith("all 2 candidate models failed: openai/gpt-4o: HTTP 500")
    assert "anthropic/claude-sonnet-4-6: HTTP 503" in message


def test_client_errors_are_not_retried(proxy, fakes):
    fakes["openai"].push(status(400))
    with pytest.raises(openai.BadRequestError):
        oa_client(proxy).chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "x"}]
        )
    assert len(fakes["openai"].requests) == 1
    assert not fakes["anthropic"].requests


def test_stream_retried_when_it_dies_before_the_first_event(proxy, fakes):
    fakes["openai"].push(reset_mid_stream(after_chunks=0))
    chunks = list(
        oa_client(proxy).chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "a b c"}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b c"


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_upstream_dying_mid_stream_ends_with_an_error_event(proxy, fakes, client):
    fakes["openai"].push(reset_mid_stream(after_chunks=3))
    if client == "openai":
        stream = oa_client(proxy).chat.completions.create(
            model="gpt-4o", stream=True, messages=[{"role": "user", "content": "a b c d e f"}]
        )
        with pytest.raises(openai.APIError) as info:
            for _ in stream:
                pass
        assert "failed mid-stream" in str(info.value)
    else:
        with (
            pytest.raises(anthropic.APIStatusError) as info,
            an_client(proxy).messages.stream(
                model="gpt-4o", max_tokens=50, messages=[{"role": "user", "content": "a b c d e f"}]
            ) as events,
        ):
            for _ in events:
                pass
        assert "failed mid-stream" in str(info.value)


def test_slow_upstream_hits_the_listener_timeout(upstreams, fakes):
    with ProxyThread(gateway_config(upstreams, retries=0, timeout="0.5s")) as proxy:
        fakes["openai"].push(slow(3))
        with pytest.raises(openai.APIStatusError) as info:
            oa_client(proxy).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 504


def test_client_disconnect_cancels_the_upstream_request(upstreams, fakes):
    # A long listener timeout: only the client's disconnect can end the upstream call soon.
    with ProxyThread(gateway_config(upstreams, timeout="60s")) as proxy:
        fakes["openai"].push(hang())
        with pytest.raises(openai.APITimeoutError):
            oa_client(proxy, timeout=0.5).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        deadline = time.time() + 3
        while fakes["openai"].disconnects == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert fakes["openai"].disconnects == 1
        time.sleep(0.3)
        assert len(fakes["openai"].requests) == 1  # cancelled, not retried


def test_shutdown_lets_an_in_flight_stream_finish(upstreams, fakes):
    proxy = ProxyThread(gateway_config(upstreams), shutdown_timeout=10).__enter__()
    fakes["openai"].push(slow(0.2, between_chunks_s=0.2))
    stream = oa_client(proxy).chat.completions.create(
        model="gpt-4o", stream=True, messages=[{"role": "user", "content": "a b c d"}]
    )
    first = next(iter(stream))
    import threading

    stopper = threading.Thread(target=proxy.stop)
    stopper.start()
    rest = list(stream)
    stopper.join(15)
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "echo: a b c d"


def test_no_api_key_in_logs_or_errors(upstreams, fakes, caplog):
    caplog.set_level(logging.DEBUG)
    with ProxyThread(gateway_config(upstreams)) as proxy:
        fakes["openai"].push(
            status(
                401,
                body={
                    "error": {
                        "message": f"Incorrect API key provided: {OPENAI_KEY}",
                        "type": "invalid_request_error",
                    }
                },
            )
        )
        with pytest.raises(openai.APIStatusError) as info:
            oa_client(proxy).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        oa_client(proxy).chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "x"}]
        )
    assert OPENAI_KEY not in json.dumps(info.value.body)
    logged = caplog.text
    assert OPENAI_KEY not in logged
    assert ANTHROPIC_KEY not in logged
    assert "plano.access" in {r.name for r in caplog.records}
