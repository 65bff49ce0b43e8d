"""Travel agents demo: an agent listener that picks agents offline, agents that ask the
local model through Plano, and the official SDKs as clients.

    pip install '.[local,demo]' && python demos/travel_agents/run.py

It starts the three agents (agents.py) and `plano up demos/travel_agents/config.yaml`,
asks single-agent and two-agent questions through the OpenAI and Anthropic SDKs (one
streamed), prints which agents answered and in what order, shows the dry-run plan for a
question, and stops everything. No API keys, no GPU, no network.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config.yaml"
AGENTS = "http://127.0.0.1:8001"
MODELS = "http://127.0.0.1:12000"
QUESTIONS = [
    ("What's the weather like in Rome today?", False),
    ("Is flight AZ205 to Rome on time? And will it rain in Rome tomorrow?", False),
    ("Will it be sunny in Paris on Saturday? Also find me a hotel room in Paris.", True),
]


def main() -> int:
    agents = subprocess.Popen([sys.executable, str(HERE / "agents.py")], stdin=subprocess.DEVNULL)
    gateway = subprocess.Popen(
        [sys.executable, "-m", "plano_cli", "up", "--quiet", str(CONFIG)],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for(f"{MODELS}/healthz", gateway, timeout_s=180)
        wait_for(f"{AGENTS}/healthz", gateway, timeout_s=60)
        ask_openai()
        ask_anthropic()
        dry_run()
        print(
            "\nThe chains: plano traces list --where listener=travel_booking_service"
            "\nThe weather agent's: plano traces list --where agent=weather_agent"
        )
        return 0
    finally:
        for process in (gateway, agents):  # graceful: in-flight requests finish
            process.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        agents.wait(timeout=10)


def wait_for(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"plano up exited with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f}s")


def ask_openai() -> None:
    import openai

    client = openai.OpenAI(base_url=f"{AGENTS}/v1", api_key="unused", max_retries=0)
    for question, stream in QUESTIONS:
        messages = [{"role": "user", "content": question}]
        if stream:
            raw = client.chat.completions.with_raw_response.create(
                model="travel", messages=messages, stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        else:
            raw = client.chat.completions.with_raw_response.create(
                model="travel", messages=messages
            )
            text = raw.parse().choices[0].message.content
        kind = "OpenAI SDK, streamed" if stream else "OpenAI SDK"
        show(kind, question, raw.headers, text)


def ask_anthropic() -> None:
    import anthropic

    client = anthropic.Anthropic(base_url=AGENTS, api_key="unused", max_retries=0)
    question = "Is there a hotel room free in Rome tonight?"
    raw = client.messages.with_raw_response.create(
        model="travel", max_tokens=200, messages=[{"role": "user", "content": question}]
    )
    show("Anthropic SDK", question, raw.headers, raw.parse().content[0].text)


def show(kind: str, question: str, headers, text: str | None) -> None:
    agents = headers.get("x-plano-agents", "?").replace(",", " -> ")
    print(f"\n== {kind} ==\n> {question}\nagents: {agents}")
    print(f"trace:  {headers.get('x-plano-trace-id')}\n{(text or '').strip()}")


def dry_run() -> None:
    """The plan alone, from the decision-only endpoint: no agent runs."""
    question = "Any delays on flight AF1234, and what's the forecast for Paris?"
    request = urllib.request.Request(
        f"{AGENTS}/routing/v1/chat/completions",
        data=json.dumps({"messages": [{"role": "user", "content": question}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        plan = json.load(response)
    print(f"\n== Dry run (POST /routing/v1/chat/completions) ==\n> {question}")
    print(f"agents: {' -> '.join(plan['agents'])} ({plan['backend']}: {plan['detail']})")


if __name__ == "__main__":
    os.chdir(HERE.parent.parent)
    sys.exit(main())
