"""`plano route --listener`: which agents an agent listener would run, offline."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from plano_cli.app import app

CONFIG = """\
version: v0.3.0
agents:
  - {id: weather_agent, url: "http://localhost:10510"}
  - {id: flight_agent, url: "http://localhost:10520"}
model_providers:
  - {model: openai/gpt-4o-mini, access_key: $OPENAI_API_KEY, default: true}
listeners:
  - type: agent
    name: travel
    port: 8001
    agents:
      - id: weather_agent
        description: Real-time weather and multi-day forecasts for any city, temperature,
          rain, wind, sunrise and sunset.
      - id: flight_agent
        description: Live flight information between airports, departures, arrivals,
          delays, gates and terminals. When queries include both flights and other travel
          questions (e.g., weather, currency), this agent answers ONLY the flight part.
        default: true
  - {type: agent, name: solo, port: 8002, agents: [{id: weather_agent, description: weather}]}
"""


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return CliRunner()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "plano.yaml"
    path.write_text(CONFIG)
    return str(path)


def route(runner, *args):
    return runner.invoke(app, ["route", *args])


def test_json_plan_names_agents_order_backend_and_reason(runner, config):
    result = route(runner, "Will it rain in Oslo tomorrow?", "-f", config, "-l", "travel", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["listener"] == "travel"
    assert plan["agents"] == ["weather_agent"]
    assert plan["selection"] == "routed"
    assert plan["backend"] == "embedded"
    assert set(plan["scores"]) == {"weather_agent", "flight_agent"}
    assert plan["detail"].startswith("weather_agent ")


def test_text_plan_and_the_default_agent_for_small_talk(runner, config):
    result = route(runner, "hello there!", "-f", config, "--listener", "travel", "--explain")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "flight_agent" in out
    assert "no agent fits: the default agent" in out
    assert "embedded" in out
    assert "why" in out


def test_one_agent_needs_no_orchestrator(runner, config):
    result = route(runner, "anything", "-f", config, "-l", "solo", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["agents"] == ["weather_agent"]
    assert plan["selection"] == "single"
    assert plan["backend"] == "single"


def test_eval_of_an_agent_listener(runner, config, tmp_path):
    data = tmp_path / "agents.jsonl"
    rows = [
        {"text": "What's the forecast for Madrid this weekend?", "route": "weather_agent"},
        {"text": "Is flight BA117 delayed?", "route": "flight_agent"},
        {"text": "Which gate does my flight to Boston leave from?", "route": "flight_agent"},
        {"text": "good morning!", "route": "other"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = route(runner, "--eval", str(data), "-f", config, "-l", "travel", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["listener"] == "travel"
    assert report["examples"] == 4
    # "other" expects the default agent: what runs when no agent fits.
    assert report["domain_accuracy"] == 1.0
    assert set(report["per_route"]) == {"weather_agent", "flight_agent"}
    gate = route(runner, "--eval", str(data), "-f", config, "-l", "travel", "--min-accuracy", "101")
    assert gate.exit_code == 1


def test_unknown_listener_is_an_error(runner, config):
    result = route(runner, "x", "-f", config, "-l", "nope")
    assert result.exit_code == 1
    assert "no listener named 'nope'" in result.stderr
