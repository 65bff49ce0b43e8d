"""demos/travel_agents/run.py end to end: real agents, `plano up` in a real process, the
local model through llama.cpp, the OpenAI and Anthropic SDKs; offline, no keys."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None, reason="needs plano[local] (llama.cpp)"
)


def test_the_demo_runs_single_and_two_agent_questions(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PLANO_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "demos" / "travel_agents" / "run.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    agents = [line for line in result.stdout.splitlines() if line.startswith("agents: ")]
    assert agents[:4] == [
        "agents: weather_agent",
        "agents: flight_agent -> weather_agent",
        "agents: weather_agent -> hotel_agent",
        "agents: hotel_agent",
    ]
    assert agents[4].startswith("agents: flight_agent -> weather_agent (embedded")
    # The last agent's answer carries the chain: the first agent's part, then its own.
    assert "[flight_agent]" in result.stdout
    assert "[weather_agent]" in result.stdout
