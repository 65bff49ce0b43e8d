"""`plano up` with an Ollama router, as a real process against the Ollama stand-in:
the missing router model is pulled with a progress display, then the gateway routes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from fakes.ollama_server import FakeOllama, closed_port_url, ollama_app
from fakes.server_thread import ServerThread

ROUTER_MODEL = "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(tmp_path, port: int, ollama_url: str):
    path = tmp_path / "plano.yaml"
    path.write_text(
        "version: v0.4.0\n"
        f"listeners:\n  - {{type: model, address: 127.0.0.1, port: {port}}}\n"
        "model_providers:\n"
        "  - {model: openai/gpt-4o-mini, base_url: 'http://127.0.0.1:9/v1',"
        " access_key: test-key-not-real, default: true}\n"
        "  - {model: openai/o3, base_url: 'http://127.0.0.1:9/v1', access_key: test-key-not-real}\n"
        "routing_preferences:\n"
        "  - name: code_generation\n"
        "    description: writing code, functions and scripts, and fixing bugs\n"
        "    models: [openai/o3]\n"
        "routing:\n"
        f"  router: {{backend: ollama, base_url: '{ollama_url}', model: {ROUTER_MODEL}}}\n"
    )
    return path


def start_up(path, tmp_path) -> subprocess.Popen:
    env = {**os.environ, "PLANO_HOME": str(tmp_path / "home"), "COLUMNS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "plano_cli", "up", "--quiet", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_healthy(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"plano up exited: {process.stderr.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail("plano up did not become healthy")


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return stderr


def route(port: int, text: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/routing/v1/chat/completions",
        data=json.dumps({"messages": [{"role": "user", "content": text}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_up_pulls_the_router_model_then_routes_with_it(tmp_path):
    state = FakeOllama(installed=[])
    with ServerThread(ollama_app(state)) as ollama:
        port = free_port()
        process = start_up(write_config(tmp_path, port, ollama.base_url), tmp_path)
        try:
            wait_healthy(port, process)
            decision = route(port, "fix the bug in my python scripts")
        finally:
            stderr = stop(process)
    assert "pulling the router model" in stderr
    assert "success" in stderr
    assert state.has(ROUTER_MODEL)
    assert decision["backend"] == "ollama"
    assert decision["route"] == "code_generation"
    chat = state.last("/api/chat").body
    assert chat["model"] == ROUTER_MODEL
    assert chat["options"]["temperature"] == 0
    assert "<routes>" in chat["messages"][0]["content"]


def test_up_without_ollama_says_so_and_routes_embedded(tmp_path):
    port = free_port()
    process = start_up(write_config(tmp_path, port, closed_port_url()), tmp_path)
    try:
        wait_healthy(port, process)
        decision = route(port, "fix the bug in my python scripts")
    finally:
        stderr = stop(process)
    assert "Ollama is not running" in stderr
    assert "https://ollama.com/download" in stderr
    assert decision["backend"] == "embedded"
