"""The routing demo Plano is known for, exactly as users paste it: `plano up` on its ten
lines of YAML (no version, no listeners), then its six requests to the three decision-only
endpoints on port 12000, through the official SDKs. tests/data/seed_demo.yaml is a copy of
the demo's config; the six prompts are acceptance checks, never training data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import openai
import pytest
from gateway_process import answers

CONFIG = Path(__file__).parent / "data" / "seed_demo.yaml"
PORT = 12000  # the demo's config names none: this is the default it must get
URL = f"http://127.0.0.1:{PORT}"
INLINE_POLICY = [
    {
        "model": "openai/gpt-4o",
        "routing_preferences": [{"name": "coding", "description": "code generation and debugging"}],
    },
    {
        "model": "openai/gpt-4o-mini",
        "routing_preferences": [
            {"name": "general", "description": "simple questions and conversation"}
        ],
    },
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", PORT))
        except OSError:
            pytest.fail(f"port {PORT} is taken: the seed demo's config serves on it")
    home = tmp_path_factory.mktemp("seed_demo")
    log = home / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(PLANO_HOME=str(home), COLUMNS="200")
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "plano_cli", "up", "--quiet", str(CONFIG)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not answers(PORT):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("plano up did not start:\n" + log.read_text())
            time.sleep(0.2)
        yield log
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chat(text: str, **extra) -> dict:
    client = openai.OpenAI(base_url=f"{URL}/routing/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        extra_body=extra or None,
    )
    return raw.http_response.json()


def messages(text: str) -> dict:
    client = anthropic.Anthropic(base_url=f"{URL}/routing", api_key="unused", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=1024, messages=[{"role": "user", "content": text}]
    )
    return raw.http_response.json()


def responses(text: str) -> dict:
    client = openai.OpenAI(base_url=f"{URL}/routing/v1", api_key="unused", max_retries=0)
    raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input=text)
    return raw.http_response.json()


def test_the_config_as_pasted_starts_with_the_defaults_said_in_one_line(demo):
    lines = [line for line in demo.read_text().splitlines() if "no version or listeners" in line]
    assert len(lines) == 1, demo.read_text()
    assert "version v0.4.0 with one model listener on port 12000" in lines[0]
    assert "error" not in demo.read_text().lower()


@pytest.mark.parametrize(
    ("send", "text", "route", "model"),
    [
        (
            chat,
            "Write a Python function that implements binary search",
            "code_generation",
            "anthropic/claude-sonnet-4-20250514",
        ),
        (
            chat,
            "Explain the trade-offs between microservices and monolithic architectures",
            "complex_reasoning",
            "openai/gpt-4o",
        ),
        (chat, "What is the capital of France?", None, "openai/gpt-4o-mini"),
        (
            messages,
            "Create a REST API endpoint in Rust using actix-web that handles user registration",
            "code_generation",
            "anthropic/claude-sonnet-4-20250514",
        ),
        (
            responses,
            "Build a React component that renders a sortable data table",
            "code_generation",
            "anthropic/claude-sonnet-4-20250514",
        ),
    ],
    ids=["binary-search", "trade-offs", "capital", "actix-messages", "react-responses"],
)
def test_each_request_routes_as_the_demo_shows(demo, send, text, route, model):
    decision = send(text)
    assert decision["route"] == route, decision
    assert decision["model"] == model, decision
    assert decision["models"] == ([model] if route else ["none"]), decision
    assert decision["backend"] == "embedded"


def test_an_inline_routing_policy_routes_quicksort_to_coding(demo):
    decision = chat("Write quicksort in Go", routing_policy=INLINE_POLICY)
    assert decision["route"] == "coding", decision
    assert decision["model"] == "openai/gpt-4o", decision
