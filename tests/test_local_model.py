"""The gateway in front of a real llama.cpp server running SmolLM2-135M (the `local` provider).

Needs the `local` extra (xllamacpp); the weights are fetched on first use. CI installs it.
"""

from __future__ import annotations

import importlib.util
import json
import time

import anthropic
import openai
import pytest
from proxy_harness import ProxyThread, config_from_yaml

from proxy.embedded.local_model import LocalModelError, LocalModelServer, model_file

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None,
    reason="the local extra is not installed: pip install '.[local]'",
)

TOOL = {
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


SEEN: list = []  # every request's Exchange: what the access log and telemetry record


@pytest.fixture(scope="module")
def proxy():
    config = config_from_yaml("""\
        version: v0.4.0
        listeners: [{name: m, type: model, port: 12000, timeout: 120s}]
        model_providers:
          - {model: local/smollm2-135m, default: true}
        model_aliases: {fast: {target: local/smollm2-135m}}
        """)
    with ProxyThread(config, shutdown_timeout=30, observers=[SEEN.append]) as running:
        yield running


def test_packaged_weights_are_found():
    path = model_file("smollm2-135m")
    assert path.name.endswith(".gguf")
    assert path.stat().st_size > 50_000_000
    with pytest.raises(LocalModelError, match="unknown local model"):
        model_file("no-such-model")


def test_openai_client_non_streaming(proxy):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="fast",
        temperature=0,
        max_tokens=20,
        messages=[{"role": "user", "content": "Say hello."}],
    )
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 20


def test_max_tokens_gives_length(proxy):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="fast",
        temperature=0,
        max_tokens=3,
        messages=[{"role": "user", "content": "Write a long story about the sea."}],
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_openai_client_streaming(proxy):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="local/smollm2-135m",
            temperature=0,
            max_tokens=15,
            stream=True,
            messages=[{"role": "user", "content": "Count to three."}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_client_is_translated(proxy, stream):
    client = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    args = {
        "model": "fast",
        "max_tokens": 20,
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": "What color is the sky?"}],
    }
    if stream:
        with client.messages.stream(**args) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**args)
    assert message.content[0].type == "text"
    assert message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.output_tokens > 0  # streamed too: the server is asked for usage


ASK = {
    "temperature": 0,
    "max_tokens": 12,
    "messages": [{"role": "user", "content": "Name a fruit."}],
}


def test_streams_record_the_tokens_the_unstreamed_answer_reports(proxy):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    whole = client.chat.completions.create(model="fast", **ASK).usage
    SEEN.clear()
    # The client does not ask for usage: it gets none, the gateway still records it.
    chunks = list(client.chat.completions.create(model="fast", stream=True, **ASK))
    assert all(c.usage is None for c in chunks)
    deadline = time.monotonic() + 10
    while not SEEN and time.monotonic() < deadline:  # recorded once the handler returns
        time.sleep(0.01)
    (exchange,) = SEEN
    assert exchange.stream
    assert (exchange.usage.input_tokens, exchange.usage.output_tokens) == (
        whole.prompt_tokens,
        whole.completion_tokens,
    )
    # Asked for, it is the last chunk, with the same counts.
    asked = list(
        client.chat.completions.create(
            model="fast", stream=True, stream_options={"include_usage": True}, **ASK
        )
    )
    assert asked[-1].choices == []
    assert asked[-1].usage.prompt_tokens == whole.prompt_tokens
    assert asked[-1].usage.completion_tokens == whole.completion_tokens


def test_the_answer_names_the_model_as_x_plano_model(proxy):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="fast", **ASK)
    assert raw.headers["x-plano-model"] == "local/smollm2-135m"
    assert raw.parse().model == "local/smollm2-135m"  # not llama.cpp's "smollm2-135m"
    chunks = list(client.chat.completions.create(model="fast", stream=True, **ASK))
    assert {c.model for c in chunks} == {"local/smollm2-135m"}


# llama.cpp's server takes tool_choice only as "auto", "required" or "none"; a named choice
# goes as "required" with tools narrowed to it (proxy.embedded.forced_tool), and SmolLM2 is
# served with a template that has tool syntax (proxy.embedded.chat_template).


def _forced_call(proxy, tools: list, name: str, argument: str) -> None:
    """One call to the named tool, its arguments fitting its schema, finish_reason tool_calls."""
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model="fast",
        temperature=0,
        max_tokens=40,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": name}},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == name
    assert isinstance(json.loads(call.function.arguments).get(argument), str)
    assert reply.choices[0].finish_reason == "tool_calls"


def test_forced_tool_call(proxy):
    """llama.cpp constrains the output to the tool's schema when a tool is forced."""
    _forced_call(proxy, [TOOL], "get_weather", "city")


def test_streamed_tool_call_translated_for_anthropic(proxy):
    """llama.cpp repeats the call id and name in every delta; the translation dedupes."""
    client = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)
    with client.messages.stream(
        model="fast",
        max_tokens=40,
        tools=[
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "input_schema": TOOL["function"]["parameters"],
            }
        ],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Rome?"}],
    ) as events:
        message = events.get_final_message()
    (block,) = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "get_weather"
    assert isinstance(block.input.get("city"), str)
    assert message.stop_reason == "tool_use"


async def test_server_reports_a_bad_model_file(tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a gguf file")
    server = LocalModelServer(str(bogus))
    with pytest.raises(LocalModelError, match="exited"):
        await server.start(timeout_s=60)


def test_the_named_tool_is_called_not_another(proxy):
    """Narrowed to the named tool, llama.cpp's grammar admits no other, however apt."""
    clock = {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The time in a timezone",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string"}},
                "required": ["timezone"],
            },
        },
    }
    _forced_call(proxy, [TOOL, clock], "get_time", "timezone")


def test_required_tool_call_without_parallel_calls(proxy):
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="fast",
            temperature=0,
            max_tokens=40,
            stream=True,
            tools=[TOOL],
            tool_choice="required",
            parallel_tool_calls=False,
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
        )
    )
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert {t.function.name for t in calls if t.function.name} == {"get_weather"}
    arguments = "".join(t.function.arguments or "" for t in calls)
    assert isinstance(json.loads(arguments).get("city"), str)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
