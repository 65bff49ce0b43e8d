"""agents[].input_filters: the filters run on the body each agent is sent."""

from __future__ import annotations

import anthropic
import openai
import pytest
from agents_harness import agent_url, route, stage
from fakes import filter_server as fs
from fakes.providers import text_reply
from filters_harness import Gateway, filter_servers
from proxy_harness import config_from_yaml

from proxy.filters.verdict import ATTR_DECISION, ATTR_TARGET

USER = {"role": "user", "content": "Weather in Paris, then a flight there?"}


@pytest.fixture(scope="module")
def world():
    with stage() as s, filter_servers(("guard",)) as servers:
        text = f"""
version: v0.3.0
agents:
  - {{id: weather_agent, url: "{s.agent_urls["weather_agent"]}"}}
  - {{id: flight_agent, url: "{s.agent_urls["flight_agent"]}"}}
model_providers:
  - model: plano/katanemo/Plano-Orchestrator-4B
    base_url: {s.orchestrator_url}/v1
overrides:
  llm_routing_model: plano/katanemo/Plano-Orchestrator-4B
routing:
  router: {{backend: openai-compatible, timeout: 1s, cache_size: 0}}
filters:
  - {{id: guard, type: http, url: "{servers["guard"].url}"}}
listeners:
  - type: agent
    name: travel
    port: 8001
    router: plano_orchestrator_v1
    agents:
      - {{id: weather_agent, description: weather forecasts, default: true}}
      - {{id: flight_agent, description: flights, input_filters: [guard]}}
"""
        with Gateway(config_from_yaml(text)) as gateway:
            yield s, servers["guard"], gateway


@pytest.fixture
def w(world):
    s, guard, _gateway = world
    s.reset()
    guard.reset()
    return world


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=agent_url(gateway.proxy) + "/v1", api_key="client-key", max_retries=0
    )


def test_only_the_agent_with_filters_has_its_body_filtered(w):
    s, guard, gateway = w
    s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
    s.agents["weather_agent"].push(text_reply("Sunny."))
    s.agents["flight_agent"].push(text_reply("AF123."))
    guard.behaviour = fs.replace(b"Paris", b"[CITY]")
    done = client(gateway).chat.completions.create(model="any", messages=[USER])
    assert done.choices[0].message.content == "AF123."
    (call,) = guard.calls  # the weather agent has no filters
    assert call.path == "/v1/chat/completions"
    assert call.headers["x-arch-upstream"] == "guard"
    assert b"Sunny." in call.body  # the body the flight agent is sent, handoff included
    assert "Paris" in s.agents["weather_agent"].last.body["messages"][-1]["content"]
    flight = s.agents["flight_agent"].last.body["messages"]
    assert flight[-1]["content"] == "Weather in [CITY], then a flight there?"
    gateway.wait_for(1)
    (step,) = gateway.filter_steps()
    assert step.attributes[ATTR_TARGET] == "flight_agent"
    assert step.attributes[ATTR_DECISION] == "modify"


def test_a_block_reaches_an_anthropic_client_in_its_shape(w):
    s, guard, gateway = w
    s.orchestrator.push(text_reply(route("flight_agent")))
    guard.behaviour = fs.block_if(b"Paris", 422, b'{"error": "no flights to Paris"}')
    an = anthropic.Anthropic(base_url=agent_url(gateway.proxy), api_key="client-key", max_retries=0)
    with pytest.raises(anthropic.UnprocessableEntityError) as raised:
        an.messages.create(model="any", max_tokens=50, messages=[USER])
    assert raised.value.body["type"] == "error"
    message = raised.value.body["error"]["message"]
    assert message.startswith("filter 'guard' blocked the request: ")
    assert "no flights to Paris" in message
    assert s.agents["flight_agent"].requests == []
