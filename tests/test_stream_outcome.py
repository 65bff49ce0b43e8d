"""A stream that fails after its 200 is recorded as such: outcome stream_error, not ok.

Before, such a stream was stored with status 200 and only an `error` field, so a search
for status 200 found failed streams too. The record (what the trace store and metrics are
built from) now carries an outcome, and the access log line says it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import anthropic
import openai
import pytest
from aiohttp import web
from fakes.providers import FakeProvider, endless_stream, openai_app
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml

from proxy.gateway.exchange import Outcome

KEY_LIKE = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
OPENAI_STREAM_START = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"role":"assistant","content":"partial "},"finish_reason":null}]}\n\n'
)
OPENAI_ERROR = (
    b'data: {"error": {"message": "model crashed, key ' + KEY_LIKE.encode() + b'",'
    b' "type": "server_error"}}\n\n'
)
OPENAI_DONE = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)
ANTHROPIC_START = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":'
    b'"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
    b"\n\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
    b'"text":"partial "}}\n\n'
)
ANTHROPIC_ERROR = (
    b"event: error\n"
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)


class Script:
    """A provider answering each call with the next raw SSE body; `None` drops the
    connection after what came before it, a number pauses that many seconds."""

    def __init__(self) -> None:
        self.bodies: list[list[bytes | float | None]] = []

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.StreamResponse:
            await request.read()
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for part in self.bodies.pop(0):
                if part is None:
                    request.transport.close()
                    return response
                if isinstance(part, float):
                    await asyncio.sleep(part)
                    continue
                await response.write(part)
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        app.router.add_post("/v1/messages", handler)
        return app


@pytest.fixture(scope="module")
def script():
    script = Script()
    with ServerThread(script.app()) as server:
        yield script, server.base_url


@pytest.fixture
def seen() -> list:
    return []


@pytest.fixture
def proxy(script, seen):
    _, url = script
    config = config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{type: model, port: 12000, max_retries: 0, timeout: 5s}}]
        model_providers:
          - {{model: openai/m, base_url: "{url}/v1", access_key: sk-test-0000, default: true}}
          - {{model: anthropic/a, base_url: "{url}", access_key: sk-test-0000}}
        """
    )
    with ProxyThread(config, observers=[seen.append]) as running:
        yield running


def last(seen: list):
    # Observers run when the handler ends: for a stream, a moment after the client's end.
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    return seen[-1]


def openai_stream(proxy, model: str = "m") -> list:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    messages = [{"role": "user", "content": "x"}]
    return list(client.chat.completions.create(model=model, messages=messages, stream=True))


def anthropic_stream(proxy, model: str) -> None:
    client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
    with client.messages.stream(
        model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as events:
        list(events)


def test_a_whole_stream_is_ok(proxy, script, seen, caplog):
    caplog.set_level(logging.INFO, logger="plano.access")
    script[0].bodies.append([OPENAI_STREAM_START, OPENAI_DONE])
    openai_stream(proxy)
    record = last(seen)
    assert (record.status, record.outcome, record.error) == (200, Outcome.OK, None)
    assert "outcome=" not in caplog.text


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_provider_that_dies_mid_stream_gives_stream_error(proxy, script, seen, caplog, client):
    caplog.set_level(logging.INFO, logger="plano.access")
    script[0].bodies.append([OPENAI_STREAM_START, None])
    with pytest.raises(openai.APIError if client == "openai" else anthropic.APIStatusError):
        openai_stream(proxy) if client == "openai" else anthropic_stream(proxy, "m")
    record = last(seen)
    assert (record.status, record.outcome) == (200, Outcome.STREAM_ERROR)
    assert record.error == "openai/m: the response was cut off"
    assert " 200 outcome=stream_error model=openai/m " in caplog.text


def test_an_error_event_from_an_openai_provider_gives_stream_error(proxy, script, seen, caplog):
    caplog.set_level(logging.INFO, logger="plano.access")
    script[0].bodies.append([OPENAI_STREAM_START, OPENAI_ERROR])
    with pytest.raises(openai.APIError):
        openai_stream(proxy)
    record = last(seen)
    assert (record.status, record.outcome) == (200, Outcome.STREAM_ERROR)
    assert record.error.startswith("model crashed, key ")
    assert KEY_LIKE not in record.error  # what a provider echoes is masked in the record
    assert "200 outcome=stream_error" in caplog.text


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("held_open", [0.0, 2.0])
def test_an_error_event_from_an_anthropic_provider_gives_stream_error(
    proxy, script, seen, client, held_open
):
    # With the provider holding its connection open after the error event, the SDKs
    # (which raise at it) hang up first: the stream still failed; the client did not
    # walk away from it (was a 499 under load).
    body: list[bytes | float | None] = [ANTHROPIC_START, ANTHROPIC_ERROR]
    if held_open:
        body.append(held_open)
    script[0].bodies.append(body)
    if client == "openai":
        with pytest.raises(openai.APIError):
            openai_stream(proxy, "anthropic/a")
    else:
        with pytest.raises(anthropic.APIStatusError):
            anthropic_stream(proxy, "anthropic/a")
    record = last(seen)
    assert (record.status, record.outcome, record.error) == (
        200,
        Outcome.STREAM_ERROR,
        "Overloaded",
    )


def test_a_client_that_leaves_mid_stream_is_a_client_disconnect(seen, caplog):
    caplog.set_level(logging.INFO, logger="plano.access")
    state = FakeProvider()
    state.push(endless_stream(0.01))
    with ServerThread(openai_app(state)) as upstream:
        config = config_from_yaml(
            f"""\
            version: v0.4.0
            listeners: [{{type: model, port: 12000}}]
            model_providers: [{{model: openai/m, base_url: "{upstream.base_url}/v1"}}]
            """
        )
        with ProxyThread(config, observers=[seen.append]) as proxy:
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}], stream=True
            )
            next(iter(stream))
            stream.close()
            record = last(seen)
    assert (record.status, record.outcome) == (499, Outcome.CLIENT_DISCONNECT)
    assert " 499 outcome=client_disconnect " in caplog.text
