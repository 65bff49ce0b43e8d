"""POST /v1/responses through the official OpenAI SDK, with server-side conversation state."""

from __future__ import annotations

import json

import openai
import pytest
from fakes.providers import FakeProvider, anthropic_app, openai_app
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml

TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def upstreams():
    oa, an = FakeProvider(), FakeProvider()
    with ServerThread(openai_app(oa)) as oa_server, ServerThread(anthropic_app(an)) as an_server:
        yield {"openai": (oa, oa_server.base_url), "anthropic": (an, an_server.base_url)}


def config(upstreams, state: str = "", **env):
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{name: m, type: model, port: 12000}}]
        model_providers:
          - {{model: openai/gpt-4o, base_url: "{upstreams["openai"][1]}/v1", access_key: $K,
             default: true}}
          - {{model: anthropic/claude-sonnet-4-6, base_url: "{upstreams["anthropic"][1]}",
             access_key: $K}}
        {state}
        """,
        env={"K": "test-key"},
    )


@pytest.fixture
def proxy(upstreams):
    for fake, _ in upstreams.values():
        fake.clear()
    with ProxyThread(config(upstreams)) as running:
        yield running


def client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-6"])
@pytest.mark.parametrize("stream", [False, True])
def test_text(proxy, model, stream):
    if stream:
        with client(proxy).responses.stream(
            model=model, input="hello there", instructions="be brief"
        ) as events:
            response = events.get_final_response()
    else:
        response = client(proxy).responses.create(
            model=model, input="hello there", instructions="be brief"
        )
    assert response.output_text == "echo: hello there"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.usage.output_tokens == 3


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-6"])
@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip(proxy, model, stream):
    args = {
        "model": model,
        "input": "weather in Paris",
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
    }
    if stream:
        with client(proxy).responses.stream(**args) as events:
            response = events.get_final_response()
    else:
        response = client(proxy).responses.create(**args)
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"echo": "weather in Paris"}
    follow = client(proxy).responses.create(
        model=model,
        previous_response_id=response.id,
        tools=[TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert follow.output_text == "tool said: sunny"


def test_previous_response_id_carries_the_conversation(proxy, upstreams):
    first = client(proxy).responses.create(
        model="gpt-4o", input="my name is Ada", instructions="first instructions"
    )
    second = client(proxy).responses.create(
        model="gpt-4o",
        input="what is my name?",
        previous_response_id=first.id,
        instructions="second instructions",
    )
    assert second.previous_response_id == first.id
    sent = upstreams["openai"][0].last.body["messages"]
    assert sent == [
        {"role": "system", "content": "second instructions"},
        {"role": "user", "content": "my name is Ada"},
        {"role": "assistant", "content": "echo: my name is Ada"},
        {"role": "user", "content": "what is my name?"},
    ]
    # a conversation may continue on another provider
    client(proxy).responses.create(
        model="claude-sonnet-4-6", input="and now?", previous_response_id=second.id
    )
    messages = upstreams["anthropic"][0].last.body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]


def test_unknown_previous_response_is_a_400(proxy):
    with pytest.raises(openai.BadRequestError) as info:
        client(proxy).responses.create(
            model="gpt-4o", input="x", previous_response_id="resp_doesnotexist"
        )
    assert "resp_doesnotexist" in info.value.body["message"]


def test_store_false_keeps_nothing(proxy):
    response = client(proxy).responses.create(model="gpt-4o", input="x", store=False)
    with pytest.raises(openai.BadRequestError):
        client(proxy).responses.create(model="gpt-4o", input="y", previous_response_id=response.id)


def test_state_survives_a_restart_in_sqlite(upstreams, tmp_path):
    db = tmp_path / "state.db"
    state = f"state_storage: {{type: sqlite, path: '{db}'}}"
    with ProxyThread(config(upstreams, state)) as first_run:
        first = client(first_run).responses.create(model="gpt-4o", input="remember me")
    assert db.is_file()
    with ProxyThread(config(upstreams, state)) as second_run:
        follow = client(second_run).responses.create(
            model="gpt-4o", input="again", previous_response_id=first.id
        )
    assert follow.output_text == "echo: again"
    assert [m["role"] for m in upstreams["openai"][0].last.body["messages"]] == [
        "user",
        "assistant",
        "user",
    ]


def test_memory_state_is_per_process(upstreams):
    state = "state_storage: {type: memory}"
    with ProxyThread(config(upstreams, state)) as first_run:
        first = client(first_run).responses.create(model="gpt-4o", input="x")
        client(first_run).responses.create(model="gpt-4o", input="y", previous_response_id=first.id)
    with ProxyThread(config(upstreams, state)) as second_run, pytest.raises(openai.BadRequestError):
        client(second_run).responses.create(
            model="gpt-4o", input="z", previous_response_id=first.id
        )


def test_unsupported_builtin_tool_is_a_clear_400(proxy):
    with pytest.raises(openai.BadRequestError) as info:
        client(proxy).responses.create(model="gpt-4o", input="x", tools=[{"type": "web_search"}])
    assert "web_search" in info.value.body["message"]


async def test_async_client_stream_and_continue(proxy):
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    async with client.responses.stream(model="claude-sonnet-4-6", input="one two") as events:
        first = await events.get_final_response()
    follow = await client.responses.create(
        model="gpt-4o", input="three", previous_response_id=first.id
    )
    assert first.output_text == "echo: one two"
    assert follow.output_text == "echo: three"
    await client.close()
