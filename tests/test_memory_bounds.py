"""The gateway's memory stays bounded whatever an upstream sends.

A real `plano up` process, stand-in providers sending 300 MB: a non-streaming answer it
must translate, one it passes through, and a stream whose first line never ends. What is
measured is the process's peak resident set (VmHWM) over its resident set before. Before
the limit, a 300 MB answer took the gateway from 53 MB to 911 MB.
"""

from __future__ import annotations

import json
import sys
from http.client import HTTPConnection, IncompleteRead

import pytest
from fakes.providers import FakeProvider, endless_line, giant_answer, openai_app
from fakes.server_thread import ServerThread
from gateway_process import Gateway, plano_up

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

GIANT = 300_000_000
MAX_GROWTH_KB = 100 * 1024
USER = [{"role": "user", "content": "hi"}]


def config(base_url: str, extra: str = "") -> str:
    return (
        "version: v0.4.0\n"
        "listeners:\n  - {type: model, address: 127.0.0.1, port: {port}, timeout: 120s}\n"
        "model_providers:\n"
        f"  - {{model: openai/gpt-4o, base_url: '{base_url}/v1', access_key: sk-fake-key-0000}}\n"
        f"{extra}"
    )


def post(gateway: Gateway, path: str, body: dict) -> tuple[int, int, bytes]:
    """Status, bytes received and the first bytes: read as it comes, never held whole."""
    conn = HTTPConnection("127.0.0.1", gateway.port, timeout=120)
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    conn.request("POST", path, json.dumps(body), headers)
    response = conn.getresponse()
    received, head = 0, b""
    try:
        while chunk := response.read(1 << 16):
            head = head or chunk[:300]
            received += len(chunk)
    except IncompleteRead as exc:  # a relayed body cut short at the limit
        received += len(exc.partial)
    finally:
        conn.close()
    return response.status, received, head


def warmed_up(gateway: Gateway) -> int:
    """The resident set (kB) once one request has been served: the baseline."""
    assert post(gateway, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER})[0] == 200
    return gateway.status_kb("VmRSS")


@pytest.fixture(scope="module")
def upstream():
    state = FakeProvider()
    with ServerThread(openai_app(state)) as server:
        yield state, server.base_url


def test_giant_answers_and_an_endless_line_with_the_default_limit(upstream, tmp_path):
    state, url = upstream
    with plano_up(tmp_path, config(url)) as gateway:
        assert (
            post(gateway, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER})[0] == 200
        )
        before = gateway.status_kb("VmRSS")

        # Translated (an Anthropic client, an OpenAI provider): held up to the limit, refused.
        state.push(giant_answer(GIANT))
        status, _, head = post(
            gateway, "/v1/messages", {"model": "gpt-4o", "max_tokens": 5, "messages": USER}
        )
        assert status == 502
        assert b"the answer is larger than 33554432 bytes" in head

        # Passed through, size undeclared: relayed, and cut off at the limit.
        state.push(giant_answer(GIANT))
        status, received, _ = post(
            gateway, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER}
        )
        assert status == 200
        assert 1 << 20 < received <= 32 << 20  # relayed as it came, up to the limit

        # A stream whose first line never ends.
        state.push(endless_line())
        status, _, head = post(
            gateway, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER, "stream": True}
        )
        assert status == 502
        assert b"larger than 33554432 bytes" in head

        growth = gateway.status_kb("VmHWM") - before
    assert growth < MAX_GROWTH_KB, f"the gateway grew by {growth // 1024} MB"


def test_a_giant_passthrough_answer_is_relayed_without_being_held(upstream, tmp_path):
    state, url = upstream
    extra = "overrides: {max_upstream_response_bytes: 1000000000}\n"
    with plano_up(tmp_path, config(url, extra)) as gateway:
        assert (
            post(gateway, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER})[0] == 200
        )
        before = gateway.status_kb("VmRSS")
        state.push(giant_answer(GIANT))
        status, received, _ = post(
            gateway, "/v1/chat/completions", {"model": "gpt-4o", "messages": USER}
        )
        growth = gateway.status_kb("VmHWM") - before
    assert status == 200
    assert received > GIANT
    assert growth < MAX_GROWTH_KB, f"the gateway grew by {growth // 1024} MB"
