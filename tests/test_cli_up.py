"""`plano up` in the foreground, as a real process: what a new user sees on stderr."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from fakes.ollama_server import closed_port_url
from gateway_process import answers, free_port

PROVIDERS = (
    "model_providers:\n"
    "  - {model: openai/gpt-4o, base_url: 'http://127.0.0.1:9/v1', access_key: $K, default: true}\n"
    "  - {model: openai/gpt-4o-mini, base_url: 'http://127.0.0.1:9/v1', access_key: $K}\n"
)
ROUTES = (
    "routing_preferences:\n"
    "  - {name: code, description: writing code and fixing bugs, models: [openai/gpt-4o]}\n"
)


def write(tmp_path, port: int, extra: str = "") -> str:
    path = tmp_path / "plano.yaml"
    path.write_text(
        "version: v0.4.0\n"
        f"listeners:\n  - {{type: model, address: 127.0.0.1, port: {port}}}\n"
        + PROVIDERS
        + extra
        + "tracing: {random_sampling: 0}\nadmin: {enabled: false}\n"
    )
    return str(path)


def env(tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "PLANO_HOME": str(tmp_path / "home"),
        "K": "sk-test-not-real",
        "OLLAMA_HOST": closed_port_url(),  # Ollama is not running, whatever this machine has
    }


def serve_then_stop(tmp_path, config: str, port: int) -> str:
    """Start `plano up`, wait for /healthz, SIGTERM it: its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "plano_cli", "up", "--quiet", config],
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"plano up did not serve: {process.communicate(timeout=10)[1]}")
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    return stderr


def test_a_taken_port_is_an_error_and_nothing_is_left_open(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "plano_cli", "up", write(tmp_path, port)],
            env=env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert (
        f"error: cannot listen: error while attempting to bind on address ('127.0.0.1', {port}): "
        "address already in use\n"
    ) in done.stderr  # one line, not wrapped at 80 columns
    assert "Unclosed" not in done.stderr  # the listener's client session was closed
    assert "Traceback" not in done.stderr


def test_ollama_is_not_mentioned_when_no_router_llm_is_asked_for(tmp_path):
    port = free_port()
    stderr = serve_then_stop(tmp_path, write(tmp_path, port, ROUTES), port)
    assert "plano up: serving" in stderr
    assert "router          embedded CPU router" in stderr
    assert "Ollama" not in stderr


def test_a_router_llm_that_cannot_be_used_is_said_once(tmp_path):
    port = free_port()
    router = f"routing:\n  router: {{backend: ollama, base_url: '{closed_port_url()}'}}\n"
    stderr = serve_then_stop(tmp_path, write(tmp_path, port, ROUTES + router), port)
    assert stderr.count("Ollama is not running") == 1
    assert "https://ollama.com/download" in stderr


def test_the_summary_lists_aliases_with_their_fallbacks(tmp_path):
    port = free_port()
    aliases = (
        "model_aliases:\n"
        "  smart: {target: openai/gpt-4o, fallbacks: [openai/gpt-4o-mini]}\n"
        "  small: {target: openai/gpt-4o-mini}\n"
    )
    stderr = serve_then_stop(tmp_path, write(tmp_path, port, aliases), port)
    assert "  alias           smart → openai/gpt-4o  fallbacks: openai/gpt-4o-mini\n" in stderr
    assert "  alias           small → openai/gpt-4o-mini\n" in stderr
    assert "Ctrl-C or SIGTERM stops it" in stderr
