"""demos/preference_routing/run.py end to end: `plano up` in a real process, the decision
endpoint over HTTP, no API keys. It reproduces the seed demo: code to the coding model,
reasoning to the reasoning model, small talk to the default."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def test_the_demo_routes_every_prompt_as_expected(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["PLANO_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "demos" / "preference_routing" / "run.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9/9 prompts on the expected route" in result.stdout
    rows = [
        line.split()
        for line in result.stdout.splitlines()
        if line.startswith(("code_generation", "complex_reasoning", "(default)"))
    ]
    models = {row[0]: set() for row in rows}
    for row in rows:
        models[row[0]].add(row[2])
    assert models == {
        "code_generation": {"anthropic/claude-sonnet-4-6"},
        "complex_reasoning": {"openai/o3"},
        "(default)": {"openai/gpt-4o-mini"},
    }
