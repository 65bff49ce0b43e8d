"""Agent listeners without an orchestrator LLM: the embedded CPU router picks from the
agents' descriptions, offline; with one, the hybrid asks it only when unsure."""

from __future__ import annotations

import socket

import openai
import pytest
from agents_harness import agent_config, agent_url, route, stage
from fakes.providers import text_reply
from proxy_harness import ProxyThread


@pytest.fixture(scope="module")
def s():
    with stage() as result:
        yield result


def asked(s) -> int:
    """Decisions asked of the orchestrator (start-up probes its /v1/models too)."""
    return sum(r.path == "/v1/chat/completions" for r in s.orchestrator.requests)


def ask(proxy, text: str) -> str:
    client = openai.OpenAI(base_url=agent_url(proxy) + "/v1", api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="any", messages=[{"role": "user", "content": text}]
    )
    return raw.headers["x-plano-agents"]


def test_without_an_orchestrator_model_the_embedded_router_picks_offline(s):
    s.reset()
    with ProxyThread(agent_config(s, orchestrator=False, backend="auto")) as proxy:
        orchestrator = proxy.server.orchestrators["travel"]
        assert orchestrator.backend_name == "embedded"
        assert "no orchestrator model is configured" in orchestrator.service.notes[0]
        assert ask(proxy, "Will it rain in Lisbon tomorrow? What's the temperature?") == (
            "weather_agent"
        )
        assert ask(proxy, "Book me a double room for two nights near the station") == (
            "hotel_agent"
        )
        assert ask(proxy, "When does flight LH400 depart and from which gate?") == ("flight_agent")
    assert asked(s) == 0


def test_an_orchestrator_unreachable_at_start_up_leaves_the_embedded_router(s):
    s.reset()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    real = s.orchestrator_url
    s.orchestrator_url = dead
    try:
        config = agent_config(s, backend="auto", model_key="agent_orchestration_model")
    finally:
        s.orchestrator_url = real
    with ProxyThread(config) as proxy:
        orchestrator = proxy.server.orchestrators["travel"]
        assert orchestrator.backend_name == "embedded"
        assert "is not reachable" in orchestrator.service.notes[0]
        assert ask(proxy, "Will it rain in Lisbon tomorrow?") == "weather_agent"


def test_with_both_the_hybrid_asks_the_orchestrator_only_when_unsure(s):
    s.reset()
    config = agent_config(s, backend="auto", model_key="agent_orchestration_model")
    with ProxyThread(config) as proxy:
        orchestrator = proxy.server.orchestrators["travel"]
        assert orchestrator.backend_name == "hybrid"
        assert "katanemo/Plano-Orchestrator-4B" in orchestrator.describe()
        # Clear-cut: decided on the CPU, the orchestrator is not asked.
        assert ask(proxy, "Will it rain in Lisbon tomorrow? What's the temperature?") == (
            "weather_agent"
        )
        assert asked(s) == 0
        # A vague request: the embedded router is unsure, the orchestrator decides, and
        # may name several agents.
        s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
        assert ask(proxy, "Planning a weekend in Rome, can you help?") == (
            "weather_agent,flight_agent"
        )
        assert asked(s) == 1
