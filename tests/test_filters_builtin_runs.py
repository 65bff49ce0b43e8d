"""How the chain runs built-ins and reports failed calls: which built-in checks a body on
the event loop and which in a worker thread, the lazy loads done at start-up, and a
failure's text redacted in the log as on the span."""

from __future__ import annotations

import asyncio
import logging
import threading

import numpy as np
import pytest
from filters_harness import ANTHROPIC_KEY, OPENAI_KEY, Gateway, filters_config
from proxy_harness import openai_and_anthropic_upstreams

from proxy.config.model import Filter, FilterType
from proxy.config.redact import MASK
from proxy.filters import chain
from proxy.filters.builtin.injection import Detector, InjectionFilter
from proxy.filters.verdict import Decision, FilterFailure, Verdict

SECRET = "sk-live-0123456789abcdefghij"


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


def thread_of_check(kind: str, size: int, **options) -> threading.Thread:
    """The thread the chain runs the built-in's check of a `size`-byte body in."""
    spec = Filter(id="g", type=FilterType.BUILTIN, kind=kind, options=options)
    runner = chain.FilterRunner(spec, None, 0)  # a built-in uses no session
    seen: list[threading.Thread] = []

    def spy(body: dict, api: str, state: dict) -> Verdict:
        seen.append(threading.current_thread())
        return Verdict(Decision.PASS)

    runner.builtin.check_request = spy  # type: ignore[union-attr,method-assign]
    body = {"messages": [{"role": "user", "content": "a" * size}]}
    raw = chain.orjson.dumps(body)
    verdict = asyncio.run(runner.verdict(raw, body, "/v1/chat/completions", {}, 5, "x", {}))
    assert verdict.decision is Decision.PASS
    return seen[0]


def test_the_injection_detector_never_runs_on_the_event_loop():
    """Its heuristics take ~8 ms a KiB and a gated prompt runs the encoder: a body far
    under the 64 KiB the other built-ins check inline goes to a worker thread."""
    for size in (100, 8 * 1024):
        assert thread_of_check("prompt_injection", size) is not threading.main_thread()


@pytest.mark.parametrize(
    ("kind", "options"), [("pii", {}), ("content_policy", {"rules": [{"pattern": "x"}]})]
)
def test_the_cheap_builtins_check_small_bodies_inline(kind, options):
    assert thread_of_check(kind, 8 * 1024, **options) is threading.main_thread()
    assert thread_of_check(kind, 80 * 1024, **options) is not threading.main_thread()


class FakeEncoder:
    """Embeds texts by their length: enough for the detector's pattern embeddings."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        rows = np.array([[len(t) % 7 + 1.0, 1.0, 0.5] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_injection_encoder_is_loaded_when_the_gateway_starts(upstreams, monkeypatch):
    detector = Detector(FakeEncoder())
    monkeypatch.setattr(
        chain, "builtin_factory", lambda kind, options: InjectionFilter(detector=detector)
    )
    config = filters_config(
        upstreams, "- {id: inj, type: builtin, kind: prompt_injection}\n", "input_filters: [inj]"
    )
    assert not detector.loaded
    with Gateway(config):
        assert detector.loaded  # before any request


class FailingTransport:
    """An MCP filter whose call fails with text quoting what it was sent."""

    async def call(self, body, path, headers, timeout) -> Verdict:
        raise FilterFailure("malformed reply", f"the server said: bad input api_key: {SECRET}")

    async def close(self) -> None:
        pass


def test_a_failed_calls_message_is_redacted_in_the_log(upstreams, monkeypatch, caplog):
    monkeypatch.setattr(chain, "mcp_factory", lambda url, tool: FailingTransport())
    config = filters_config(
        upstreams,
        "- {id: guard, type: mcp, url: 'http://127.0.0.1:1/mcp', on_error: fail_open}\n",
        "input_filters: [guard]",
    )
    with caplog.at_level(logging.INFO, logger="plano.filters"), Gateway(config) as gateway:
        gateway.openai().chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "plano.filters"]
    failed = [line for line in lines if line.startswith("filter guard: malformed reply")]
    assert failed, lines
    assert SECRET not in "\n".join(lines)
    assert MASK in failed[0]
