"""Edge cases found in review: each test pins one fix."""

from __future__ import annotations

import io
import logging
import threading
import time

import openai
import pytest
from aiohttp import web
from fakes.providers import FakeProvider, openai_app, slow, status
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml

from proxy.state.conversations import StateStoreError
from proxy.telemetry.batch_log import BatchingHandler

OK_STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
ERROR_FIRST = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
NO_FINISH = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}\n\n'
    b"data: [DONE]\n\n"
)


def scripted_sse_app(bodies: list[bytes]) -> web.Application:
    """An OpenAI-format upstream that answers each call with the next raw SSE body."""
    calls = iter(bodies)

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(next(calls))
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    return app


def _config(url: str, retries: int = 2, timeout: str = "5s", extra: str = "", key: str = "k"):
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{type: model, max_retries: {retries}, timeout: {timeout}}}]
        model_providers: [{{model: openai/m, base_url: "{url}/v1", access_key: $K}}]
        {extra}
        """,
        env={"K": key},
    )


def _client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)


def test_an_error_as_the_first_stream_event_is_retried():
    with (
        ServerThread(scripted_sse_app([ERROR_FIRST, OK_STREAM])) as upstream,
        ProxyThread(_config(upstream.base_url)) as proxy,
    ):
        chunks = list(
            _client(proxy).chat.completions.create(
                model="m", stream=True, messages=[{"role": "user", "content": "x"}]
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hi"


def test_done_ends_a_stream_without_finish_reason():
    with (
        ServerThread(scripted_sse_app([NO_FINISH])) as upstream,
        ProxyThread(_config(upstream.base_url)) as proxy,
    ):
        chunks = list(
            _client(proxy).chat.completions.create(
                model="m", stream=True, messages=[{"role": "user", "content": "x"}]
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "partial"


def test_stream_options_must_be_an_object():
    state = FakeProvider()
    with (
        ServerThread(openai_app(state)) as upstream,
        ProxyThread(_config(upstream.base_url)) as proxy,
        pytest.raises(openai.BadRequestError) as info,
    ):
        _client(proxy).chat.completions.create(
            model="m", stream=True, stream_options=[1], messages=[{"role": "user", "content": "x"}]
        )
    assert "stream_options" in info.value.body["message"]


def test_final_429_keeps_retry_after():
    state = FakeProvider()
    state.push(status(429, retry_after=60))
    with (
        ServerThread(openai_app(state)) as upstream,
        ProxyThread(_config(upstream.base_url)) as proxy,
        pytest.raises(openai.RateLimitError) as info,
    ):
        _client(proxy).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers["retry-after"] == "60"


def test_a_read_timeout_is_not_retried_on_the_same_model():
    state = FakeProvider()
    state.push(slow(2), slow(2), slow(2))
    with (
        ServerThread(openai_app(state)) as upstream,
        ProxyThread(_config(upstream.base_url, retries=2, timeout="0.5s")) as proxy,
    ):
        with pytest.raises(openai.APIStatusError) as info:
            _client(proxy).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        assert info.value.status_code == 504
        time.sleep(0.3)
    assert len(state.requests) == 1  # a second attempt could bill the generation twice


def test_exact_configured_key_is_masked_in_errors():
    key = "0123456789abcdef0123456789abcdef"  # no prefix: the heuristics alone miss it
    state = FakeProvider()
    state.push(status(401, body={"error": {"message": f"Invalid API key {key}"}}))
    with (
        ServerThread(openai_app(state)) as upstream,
        ProxyThread(_config(upstream.base_url, retries=0, key=key)) as proxy,
        pytest.raises(openai.APIStatusError) as info,
    ):
        _client(proxy).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert key not in str(info.value.body)
    assert "Invalid API key ********" in info.value.body["message"]


def test_an_unusable_state_store_fails_start_cleanly(tmp_path):
    config = _config(
        "http://127.0.0.1:9", extra=f"state_storage: {{type: sqlite, path: '{tmp_path}'}}"
    )
    proxy = ProxyThread(config)
    with pytest.raises(StateStoreError, match="cannot open the conversation store"):
        proxy.__enter__()
    proxy.stop()
    assert proxy.server.bound == []
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("plano-state")]


def test_batching_handler_survives_a_bad_record():
    stream = io.StringIO()
    handler = BatchingHandler(stream, interval_s=0.01)
    logger = logging.getLogger("plano.test.batch")
    logger.addHandler(handler)
    logger.propagate = False
    logging.raiseExceptions, before = False, logging.raiseExceptions
    try:
        logger.warning("bad %d", "not a number")
        time.sleep(0.1)
        logger.warning("still %s", "alive")
        time.sleep(0.1)
    finally:
        logging.raiseExceptions = before
        logger.removeHandler(handler)
        handler.close()
    assert "still alive" in stream.getvalue()
