"""Agent listeners end to end: official SDKs -> the real proxy -> an orchestrator stand-in
and agents on loopback, each speaking the exact Chat Completions wire."""

from __future__ import annotations

import asyncio
import json

import agents_harness
import anthropic
import openai
import pytest
from agents_harness import agent_config, agent_url, route
from fakes.providers import text_reply
from proxy_harness import ProxyThread

USER = {"role": "user", "content": "What is the weather in Paris and is there a flight there?"}


world = pytest.fixture(scope="module")(agents_harness.world)


s = pytest.fixture(agents_harness.fresh_stage)
proxy = pytest.fixture(agents_harness.world_proxy)


def oa(proxy, **kw) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=agent_url(proxy) + "/v1", api_key="client-key", max_retries=0, **kw
    )


def answers(s, **texts: str) -> None:
    for agent_id, text in texts.items():
        s.agents[agent_id].push(text_reply(text))


def test_two_agents_run_in_the_orchestrators_order_with_the_handoff(s, proxy):
    s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
    answers(s, weather_agent="Sunny, 24C.", flight_agent="AF123 at 9:00.")
    raw = oa(proxy).chat.completions.with_raw_response.create(
        model="any", messages=[{"role": "system", "content": "be brief"}, USER]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "AF123 at 9:00."
    assert raw.headers["x-plano-agents"] == "weather_agent,flight_agent"

    weather = s.agents["weather_agent"].last
    assert weather.path == "/v1/chat/completions"
    assert weather.body["messages"] == [{"role": "system", "content": "be brief"}, USER]
    flight = s.agents["flight_agent"].last
    assert flight.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "assistant", "content": "Sunny, 24C.", "name": "weather_agent"},
        USER,
    ]
    assert s.agents["hotel_agent"].requests == []
    # Upstream's headers: the client's, x-request-id, a fresh traceparent, x-arch-upstream.
    assert weather.headers["x-arch-upstream"] == "weather_agent"
    assert flight.headers["x-arch-upstream"] == "flight_agent"
    assert weather.headers["authorization"] == "Bearer client-key"
    assert weather.headers["x-request-id"] == flight.headers["x-request-id"]
    assert weather.headers["x-request-id"] == raw.headers["x-request-id"]
    w_trace, f_trace = weather.headers["traceparent"], flight.headers["traceparent"]
    assert w_trace.split("-")[1] == f_trace.split("-")[1] == raw.headers["x-plano-trace-id"]
    assert w_trace.split("-")[2] != f_trace.split("-")[2]  # one span per agent call


def test_the_orchestrator_gets_upstreams_prompt_with_agents_as_routes(s, proxy):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    answers(s, hotel_agent="Room booked.")
    oa(proxy).chat.completions.create(model="any", messages=[USER])
    call = s.orchestrator.last
    assert call.path == "/v1/chat/completions"
    assert call.body["model"] == "katanemo/Plano-Orchestrator-4B"
    assert call.body["temperature"] == 0.01
    prompt = call.body["messages"][0]["content"]
    assert call.body["messages"][0]["role"] == "user"
    assert "<routes>" in prompt
    assert "<conversation>" in prompt
    weather_line = next(line for line in prompt.splitlines() if '"weather_agent"' in line)
    assert json.loads(weather_line)["parameters"] == {
        "type": "object",
        "properties": {},
        "required": [],
    }
    assert USER["content"] in prompt
    assert call.headers["traceparent"]  # the orchestrator call joins the request's trace
    assert "authorization" not in call.headers  # the client's headers are not sent there


def test_three_agents_hand_off_in_order(s, proxy):
    s.orchestrator.push(text_reply(route("weather_agent", "hotel_agent", "flight_agent")))
    answers(s, weather_agent="Sunny.", hotel_agent="Hotel Lutetia.", flight_agent="AF123.")
    history = [
        {"role": "user", "content": "I am going to Paris."},
        {"role": "assistant", "content": "Nice!"},
        USER,
    ]
    out = oa(proxy).chat.completions.create(model="any", messages=history)
    assert out.choices[0].message.content == "AF123."
    hotel = s.agents["hotel_agent"].last.body["messages"]
    assert hotel == [
        *history[:2],
        {"role": "assistant", "content": "Sunny.", "name": "weather_agent"},
        USER,
    ]
    flight = s.agents["flight_agent"].last.body["messages"]
    assert flight == [
        *history[:2],
        {"role": "assistant", "content": "Sunny.", "name": "weather_agent"},
        {"role": "assistant", "content": "Hotel Lutetia.", "name": "hotel_agent"},
        USER,
    ]


def test_streaming_chain_hands_off_the_whole_stream_and_relays_the_last(s, proxy):
    s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
    answers(s, weather_agent="Sunny and warm today.", flight_agent="Flight AF123 leaves at nine.")
    stream = oa(proxy).chat.completions.create(model="any", messages=[USER], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Flight AF123 leaves at nine."
    handoff = s.agents["flight_agent"].last.body["messages"][0]
    assert handoff == {
        "role": "assistant",
        "content": "Sunny and warm today.",
        "name": "weather_agent",
    }
    # Agents get the client's body as sent: stream on, nothing added.
    assert s.agents["weather_agent"].last.body["stream"] is True


def test_async_clients_stream_and_not(s, proxy):
    async def main():
        client = openai.AsyncOpenAI(base_url=agent_url(proxy) + "/v1", api_key="k", max_retries=0)
        s.orchestrator.push(text_reply(route("hotel_agent")), text_reply(route("weather_agent")))
        answers(s, hotel_agent="Hotel found.", weather_agent="Rain.")
        whole = await client.chat.completions.create(model="any", messages=[USER])
        stream = await client.chat.completions.create(model="any", messages=[USER], stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return whole.choices[0].message.content, "".join(parts)

    assert asyncio.run(main()) == ("Hotel found.", "Rain.")


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_clients_get_messages_and_agents_get_chat_completions(s, proxy, stream):
    s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
    answers(s, weather_agent="Sunny.", flight_agent="AF123 at nine.")
    client = anthropic.Anthropic(base_url=agent_url(proxy), api_key="ak", max_retries=0)
    kwargs = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": USER["content"]}],
    }
    if stream:
        with client.messages.stream(**kwargs) as events:
            text = events.get_final_text()
    else:
        text = client.messages.create(**kwargs).content[0].text
    assert text == "AF123 at nine."
    weather = s.agents["weather_agent"].last
    assert weather.path == "/v1/chat/completions"
    assert weather.body["messages"] == [{"role": "system", "content": "be brief"}, USER]
    assert weather.body["max_tokens"] == 100
    assert weather.body.get("stream", False) is stream
    assert s.agents["flight_agent"].last.body["messages"][1] == {
        "role": "assistant",
        "content": "Sunny.",
        "name": "weather_agent",
    }


@pytest.mark.parametrize("stream", [False, True])
def test_responses_clients(s, proxy, stream):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    answers(s, hotel_agent="Two rooms free.")
    client = oa(proxy)
    if stream:
        events = list(client.responses.create(model="any", input="a hotel in Paris?", stream=True))
        text = events[-1].response.output_text
    else:
        text = client.responses.create(model="any", input="a hotel in Paris?").output_text
    assert text == "Two rooms free."
    sent = s.agents["hotel_agent"].last.body
    assert sent["messages"] == [{"role": "user", "content": "a hotel in Paris?"}]


def test_one_agent_listener_never_asks_the_orchestrator(s):
    with ProxyThread(agent_config(s, agents=("weather_agent",), default=None)) as proxy:
        answers(s, weather_agent="Sunny.")
        out = oa(proxy).chat.completions.create(model="any", messages=[USER])
        assert out.choices[0].message.content == "Sunny."
    assert s.orchestrator.requests == []


def test_models_and_healthz(proxy):
    import urllib.request

    health = json.loads(urllib.request.urlopen(agent_url(proxy) + "/healthz").read())
    assert health == {
        "status": "ok",
        "listener": "travel",
        "agents": ["weather_agent", "flight_agent", "hotel_agent"],
    }
    models = oa(proxy).models.list()
    assert [m.id for m in models.data] == ["plano/katanemo/Plano-Orchestrator-4B"]


def test_the_access_line_names_the_agents(s, proxy, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="plano.access")
    s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
    answers(s, weather_agent="Sunny.", flight_agent="AF123.")
    oa(proxy).chat.completions.create(model="any", messages=[USER])
    lines = [r.getMessage() for r in caplog.records if r.name == "plano.access"]
    assert any(
        "/v1/chat/completions 200 model=any agents=weather_agent,flight_agent" in line
        for line in lines
    ), lines


def test_a_key_sent_as_the_model_is_masked_in_the_access_log(s, proxy, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="plano.access")
    answers(s, flight_agent="ok")
    s.orchestrator.push(text_reply(route("flight_agent")))
    key = "sk-proj-" + "a1B2c3D4" * 6
    oa(proxy).chat.completions.create(model=key, messages=[USER])
    lines = [r.getMessage() for r in caplog.records if r.name == "plano.access"]
    assert lines
    assert not any(key in line for line in lines)
    # The agent still gets the client's body as sent: it is the client's to send.
    assert s.agents["flight_agent"].last.body["model"] == key


def test_async_anthropic_client_streams_and_not(s, proxy):
    async def main():
        client = anthropic.AsyncAnthropic(base_url=agent_url(proxy), api_key="k", max_retries=0)
        s.orchestrator.push(text_reply(route("hotel_agent")), text_reply(route("weather_agent")))
        answers(s, hotel_agent="Two rooms.", weather_agent="Cloudy.")
        kwargs = {"model": "m", "max_tokens": 50, "messages": [USER]}
        whole = await client.messages.create(**kwargs)
        async with client.messages.stream(**kwargs) as events:
            streamed = await events.get_final_text()
        await client.close()
        return whole.content[0].text, streamed

    assert asyncio.run(main()) == ("Two rooms.", "Cloudy.")


def test_responses_state_carries_over_through_agents(s, proxy):
    s.orchestrator.push(text_reply(route("hotel_agent")), text_reply(route("hotel_agent")))
    answers(s, hotel_agent="Hotel Artemide.")
    client = oa(proxy)
    first = client.responses.create(model="m", input="a hotel in Rome?")
    client.responses.create(model="m", input="and its price?", previous_response_id=first.id)
    assert s.agents["hotel_agent"].last.body["messages"] == [
        {"role": "user", "content": "a hotel in Rome?"},
        {"role": "assistant", "content": "Hotel Artemide."},
        {"role": "user", "content": "and its price?"},
    ]
