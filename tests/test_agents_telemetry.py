"""An agent request in telemetry: one trace holds the orchestrator, the agents and the
agents' own LLM calls through the model listener; metrics count orchestrator and agents."""

from __future__ import annotations

import contextlib
import time
import urllib.request

import openai
from agents_harness import agent_url, model_url, route
from fakes.llm_agent import LLMAgent
from fakes.providers import FakeProvider, openai_app, status, text_reply
from fakes.server_thread import ServerThread
from prometheus_client.parser import text_string_to_metric_families
from proxy_harness import ProxyThread, config_from_yaml

from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.store import TraceStore


def _config(llm_url: str, orchestrator_url: str, agents: dict[str, str]) -> str:
    return f"""
version: v0.3.0
agents:
  - id: weather_agent
    url: {agents["weather_agent"]}
  - id: flight_agent
    url: {agents["flight_agent"]}
model_providers:
  - model: openai/gpt-4o-mini
    base_url: {llm_url}/v1
    access_key: sk-test-key-123456
    default: true
  - model: plano/katanemo/Plano-Orchestrator-4B
    base_url: {orchestrator_url}/v1
overrides:
  llm_routing_model: plano/katanemo/Plano-Orchestrator-4B
routing:
  router: {{backend: openai-compatible, timeout: 2s, cache_size: 0}}
listeners:
  - {{type: model, name: llm, port: 12000}}
  - type: agent
    name: travel
    port: 8001
    agents:
      - id: weather_agent
        description: Weather forecasts for a city.
      - id: flight_agent
        description: Flights between airports.
        default: true
tracing:
  random_sampling: 100
"""


@contextlib.contextmanager
def world(tmp_path):
    llm, orchestrator = FakeProvider(), FakeProvider()
    agents = {
        "weather_agent": LLMAgent("weather_agent", "openai/gpt-4o-mini"),
        "flight_agent": LLMAgent("flight_agent", "openai/gpt-4o-mini"),
    }
    with contextlib.ExitStack() as stack:
        llm_server = stack.enter_context(ServerThread(openai_app(llm)))
        orch_server = stack.enter_context(ServerThread(openai_app(orchestrator)))
        urls = {
            name: stack.enter_context(ServerThread(agent.app())).base_url
            for name, agent in agents.items()
        }
        config = config_from_yaml(_config(llm_server.base_url, orch_server.base_url, urls))
        worker = WorkerSettings(store_path=str(tmp_path / "traces.db"), admin_port=0)
        proxy = stack.enter_context(ProxyThread(config, telemetry=worker))
        for agent in agents.values():
            agent.model_url = model_url(proxy)
        yield proxy, llm, orchestrator, agents


def _spans(tmp_path, trace_id: str, count: int) -> list:
    deadline = time.monotonic() + 20
    while True:
        with TraceStore.open(tmp_path / "traces.db") as store:
            detail = store.get_trace(trace_id)
        spans = detail.spans if detail is not None else []
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def test_one_trace_holds_the_orchestrator_the_agents_and_their_llm_calls(tmp_path):
    with world(tmp_path) as (proxy, _llm, orchestrator, agents):
        orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
        client = openai.OpenAI(base_url=agent_url(proxy) + "/v1", api_key="k", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="travel", messages=[{"role": "user", "content": "weather and flights to Rome"}]
        )
        answer = raw.parse().choices[0].message.content
        trace_id = raw.headers["x-plano-trace-id"]
        # Two inbound requests on the model listener (one per agent), each with its llm span.
        spans = _spans(tmp_path, trace_id, 9)
    assert answer.startswith("[flight_agent] echo: weather and flights to Rome")
    # The flight agent saw the weather agent's answer as a named assistant turn.
    handoff = agents["flight_agent"].seen[-1]["body"]["messages"][-2]
    assert handoff["name"] == "weather_agent"
    assert handoff["content"].startswith("[weather_agent] echo:")

    names = [span.name for span in spans]
    assert {span.trace_id for span in spans} == {trace_id}
    assert names.count("plano(orchestrator)") == 1
    assert names.count("plano(agent)") == 2
    assert names.count("plano(inbound)") == 3  # the agent listener's, and each agent's call
    assert names.count("plano(llm)") == 2
    by_id = {span.span_id: span for span in spans}
    root = next(s for s in spans if s.name == "plano(inbound)" and s.parent_id is None)
    agent_spans = sorted(
        (s for s in spans if s.name == "plano(agent)"), key=lambda s: s.attributes["agent.position"]
    )
    assert [s.attributes["agent.id"] for s in agent_spans] == ["weather_agent", "flight_agent"]
    assert all(s.parent_id == root.span_id for s in agent_spans)
    assert agent_spans[0].attributes["agent.handoff"].startswith("[weather_agent] echo:")
    # Each agent's LLM call, made with the traceparent it got, hangs off its plano(agent).
    for agent_span in agent_spans:
        children = [s for s in spans if s.parent_id == agent_span.span_id]
        assert [c.name for c in children] == ["plano(inbound)"]
        assert children[0].attributes["plano.listener"] == "llm"
    orchestration = next(s for s in spans if s.name == "plano(orchestrator)")
    assert orchestration.attributes["orchestrator.agents"] == ["weather_agent", "flight_agent"]
    assert orchestration.attributes["orchestrator.selection"] == "routed"
    assert orchestration.parent_id == root.span_id
    assert by_id  # every span id is unique
    assert len(by_id) == len(spans)


def _metrics(proxy) -> dict[str, list]:
    text = urllib.request.urlopen(proxy.server.admin_url + "/metrics", timeout=5).read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _value(samples, name: str, **labels) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_a_failed_orchestrator_is_on_the_trace_and_in_the_metrics(tmp_path):
    with world(tmp_path) as (proxy, _llm, orchestrator, _agents):
        orchestrator.push(status(500))
        client = openai.OpenAI(base_url=agent_url(proxy) + "/v1", api_key="k", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="travel", messages=[{"role": "user", "content": "hello"}]
        )
        assert raw.headers["x-plano-agents"] == "flight_agent"
        spans = _spans(tmp_path, raw.headers["x-plano-trace-id"], 5)
        deadline = time.monotonic() + 10
        while True:
            metrics = _metrics(proxy)
            decisions = metrics.get("plano_orchestrator_decisions", [])
            if decisions or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    orchestration = next(s for s in spans if s.name == "plano(orchestrator)")
    assert orchestration.status_code == "error"
    assert "HTTP 500" in orchestration.status_message
    assert orchestration.attributes["orchestrator.selection"] == "fallback"
    assert (
        _value(
            decisions,
            "plano_orchestrator_decisions_total",
            listener="travel",
            backend="openai-compatible",
            outcome="fallback",
        )
        == 1
    )
    assert (
        _value(
            metrics["plano_orchestrator_fallbacks"],
            "plano_orchestrator_fallbacks_total",
            reason="error",
        )
        == 1
    )
    assert (
        _value(
            metrics["plano_agent_calls"],
            "plano_agent_calls_total",
            listener="travel",
            agent="flight_agent",
            outcome="ok",
        )
        == 1
    )
    assert (
        _value(
            metrics["plano_agent_duration_seconds"],
            "plano_agent_duration_seconds_count",
            agent="flight_agent",
        )
        == 1
    )


def test_plano_traces_lists_calls_by_agent_and_shows_the_chain(tmp_path):
    import json

    from typer.testing import CliRunner

    from plano_cli.app import app

    with world(tmp_path) as (proxy, _llm, orchestrator, _agents):
        client = openai.OpenAI(base_url=agent_url(proxy) + "/v1", api_key="k", max_retries=0)
        orchestrator.push(
            text_reply(route("weather_agent", "flight_agent")), text_reply(route("flight_agent"))
        )
        ids = []
        for text in ("weather and flights to Rome", "flights to Oslo"):
            raw = client.chat.completions.with_raw_response.create(
                model="travel", messages=[{"role": "user", "content": text}]
            )
            ids.append(raw.headers["x-plano-trace-id"])
        _spans(tmp_path, ids[0], 9)
        _spans(tmp_path, ids[1], 5)
    db = str(tmp_path / "traces.db")

    def listed(*where: str) -> list[str]:
        argv = ["traces", "list", "--db", db, "--json"]
        for item in where:
            argv += ["--where", item]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
        return sorted(row["trace_id"] for row in json.loads(result.stdout)["traces"])

    assert listed("agent=weather_agent") == [ids[0]]
    assert listed("agent=flight_agent") == sorted(ids)
    assert listed("agent=flight_agent", "listener=travel") == sorted(ids)
    # A call of the model listener ran no agent, though its trace did.
    assert listed("agent=weather_agent", "listener=llm") == []
    assert listed("agent=hotel_agent") == []
    shown = CliRunner().invoke(app, ["traces", "show", ids[0], "--db", db])
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert out.index("agent.id=weather_agent") < out.index("agent.id=flight_agent")
    assert "orchestrator.agents" in out
    assert "agent.handoff=[weather_agent]" in out
    chain = out[out.index("\nChain\n") :]
    assert chain.index("weather_agent  ok") < chain.index("flight_agent  ok")
    assert "handoff [weather_agent]" in chain
    assert "answered the client" in chain
