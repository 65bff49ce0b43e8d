"""An agent listener on loopback: stand-in agents and a stand-in orchestrator LLM, each a
real aiohttp server speaking the exact Chat Completions wire (tests/fakes/providers.py),
and the real proxy in front of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from fakes.providers import FakeProvider, openai_app
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml

from proxy.config.model import ListenerType

AGENT_IDS = ("weather_agent", "flight_agent", "hotel_agent")
DESCRIPTIONS = {
    "weather_agent": "Weather forecasts and current conditions for any city: temperature, "
    "rain, wind, sunrise and sunset.",
    "flight_agent": "Flights between airports: schedules, departures, arrivals, delays, gates "
    "and terminals.",
    "hotel_agent": "Hotel rooms: availability, prices, booking and cancellation of stays.",
}


@dataclass
class Stage:
    """The stand-ins, shared by a module's tests; `reset()` between tests."""

    agents: dict[str, FakeProvider] = field(default_factory=dict)
    agent_urls: dict[str, str] = field(default_factory=dict)
    orchestrator: FakeProvider = field(default_factory=FakeProvider)
    orchestrator_url: str = ""

    def reset(self) -> None:
        for state in (*self.agents.values(), self.orchestrator):
            state.clear()
            state.disconnects = 0


@contextlib.contextmanager
def stage() -> Iterator[Stage]:
    result = Stage()
    with contextlib.ExitStack() as stack:
        for agent_id in AGENT_IDS:
            state = FakeProvider()
            server = stack.enter_context(ServerThread(openai_app(state)))
            result.agents[agent_id] = state
            result.agent_urls[agent_id] = server.base_url
        orchestrator = stack.enter_context(ServerThread(openai_app(result.orchestrator)))
        result.orchestrator_url = orchestrator.base_url
        yield result


def agent_config(
    s: Stage,
    *,
    agents: tuple[str, ...] = AGENT_IDS,
    default: str | None = "flight_agent",
    orchestrator: bool = True,
    backend: str = "openai-compatible",
    timeout: str = "2s",
    router_timeout: str = "1s",
    model_key: str = "llm_routing_model",
    urls: dict[str, str] | None = None,
    overrides: dict | None = None,
    extra: str = "",
):
    """One agent listener over `agents`; the orchestrator stand-in as its LLM, if asked."""
    urls = {**s.agent_urls, **(urls or {})}
    listed = "\n".join(
        f"""      - id: {agent_id}
        description: {DESCRIPTIONS[agent_id]!r}"""
        + ("\n        default: true" if agent_id == default else "")
        for agent_id in agents
    )
    providers = ""
    settings = dict(overrides or {})
    if orchestrator:
        providers = f"""
model_providers:
  - model: plano/katanemo/Plano-Orchestrator-4B
    base_url: {s.orchestrator_url}/v1
"""
        # llm_routing_model names the router of model routing too (upstream's way), so
        # backend: openai-compatible has its endpoint for the model listener as well.
        settings[model_key] = "plano/katanemo/Plano-Orchestrator-4B"
    listed_overrides = "".join(f"\n  {key}: {value}" for key, value in settings.items())
    overrides_text = f"overrides:{listed_overrides}" if settings else ""
    text = f"""
version: v0.3.0
agents:
{chr(10).join(f"  - id: {a}{chr(10)}    url: {urls[a]}" for a in AGENT_IDS)}
{providers}
{overrides_text}
routing:
  router:
    backend: {backend}
    timeout: {router_timeout}
    cache_size: 0  # every request asks the orchestrator: each test scripts its answer
listeners:
  - type: agent
    name: travel
    port: 8001
    timeout: {timeout}
    router: plano_orchestrator_v1
    agents:
{listed}
{extra}
"""
    return config_from_yaml(text)


def agent_url(proxy: ProxyThread) -> str:
    return next(b.url for b in proxy.server.bound if b.listener.type is ListenerType.AGENT)


def model_url(proxy: ProxyThread) -> str:
    return next(b.url for b in proxy.server.bound if b.listener.type is ListenerType.MODEL)


def route(*names: str) -> str:
    """What Plano-Orchestrator answers: the agents, in order."""
    import json

    return json.dumps({"route": list(names)})


def world():
    """Module fixture body: the stand-ins and one proxy over `agent_config(stage)`."""
    with stage() as s, ProxyThread(agent_config(s)) as proxy:
        yield s, proxy


def fresh_stage(world):
    """Fixture body: the module's stand-ins, their scripts and records cleared."""
    world[0].reset()
    return world[0]


def world_proxy(world):
    """Fixture body: the module's proxy."""
    return world[1]
