"""Agent listeners within the gateway's bounds: answer size, a dripping agent, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import openai
import orjson
import pytest
from agents_harness import agent_config, agent_url, route, stage
from aiohttp import web
from fakes.providers import (
    drip,
    endless_line,
    endless_stream,
    giant_answer,
    hang,
    slow,
    text_reply,
)
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread

USER = {"role": "user", "content": "a hotel in Rome"}
LIMIT = 100_000


@pytest.fixture(scope="module")
def world():
    overrides = {"max_upstream_response_bytes": LIMIT}
    with stage() as s, ProxyThread(agent_config(s, overrides=overrides)) as proxy:
        yield s, proxy


@pytest.fixture
def s(world):
    world[0].reset()
    return world[0]


def client(proxy, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=agent_url(proxy) + "/v1", api_key="k", max_retries=0, **kw)


def ask(proxy, stream: bool):
    out = client(proxy).chat.completions.create(model="m", messages=[USER], stream=stream)
    if stream:
        return "".join(c.choices[0].delta.content or "" for c in out if c.choices)
    return out.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("declared", [False, True])
def test_an_answer_past_the_limit_is_a_502(world, s, stream, declared):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(giant_answer(LIMIT * 2, content_length=declared))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(world[1], stream=False)
    assert caught.value.status_code == 502
    assert caught.value.body["message"] == (
        f"agent 'hotel_agent' sent an answer larger than {LIMIT} bytes "
        "(overrides.max_upstream_response_bytes)"
    )


def test_an_intermediate_answer_past_the_limit_stops_the_chain(world, s):
    s.orchestrator.push(text_reply(route("weather_agent", "hotel_agent")))
    s.agents["weather_agent"].push(endless_line(size=LIMIT * 2))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(world[1], stream=True)
    assert caught.value.status_code == 502
    assert "agent 'weather_agent' sent an answer larger than" in caught.value.body["message"]
    assert s.agents["hotel_agent"].requests == []


def _opening_then_endless_line() -> web.Application:
    """An agent whose stream opens normally, and then, once the client surely has the
    opening (Plano has committed the stream), sends one `data:` line that never ends."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        opening = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "a"}
        opening["choices"] = [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]
        await response.write(b"data: " + orjson.dumps(opening) + b"\n\n")
        await asyncio.sleep(0.3)
        await response.write(b"data: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(LIMIT // 4096 + 10):
                await response.write(b"x" * 4096)
                await asyncio.sleep(0)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    return app


def test_an_endless_stream_ends_with_an_error_event_at_the_limit(s):
    overrides = {"max_upstream_response_bytes": LIMIT}
    with ServerThread(_opening_then_endless_line()) as agent:
        config = agent_config(s, urls={"hotel_agent": agent.base_url}, overrides=overrides)
        with ProxyThread(config) as proxy:
            s.orchestrator.push(text_reply(route("hotel_agent")))
            stream = client(proxy).chat.completions.create(model="m", messages=[USER], stream=True)
            with pytest.raises(openai.APIError) as caught:
                for _ in stream:
                    pass
    assert f"agent 'hotel_agent' sent an event longer than {LIMIT} bytes" in str(caught.value)


def test_an_agent_dripping_its_first_event_times_out(world, s):
    # Each byte comes well within the 2 s read timeout; the first event never does.
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(drip(0.3))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        ask(world[1], stream=True)
    assert caught.value.status_code == 504
    assert caught.value.body["message"] == "agent 'hotel_agent' did not answer within 2s"
    assert time.monotonic() - started < 8


def test_shutdown_lets_an_agent_stream_finish(s):
    proxy = ProxyThread(agent_config(s, timeout="30s"), shutdown_timeout=10).__enter__()
    try:
        s.orchestrator.push(text_reply(route("hotel_agent")))
        s.agents["hotel_agent"].push(slow(0.2, between_chunks_s=0.2))  # echoes the question
        stream = client(proxy).chat.completions.create(model="m", messages=[USER], stream=True)
        first = next(iter(stream))
        stopper = threading.Thread(target=proxy.stop)
        stopper.start()
        rest = list(stream)
        stopper.join(20)
    finally:
        proxy.stop()
    text = "".join(c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    assert text == "echo: a hotel in Rome"


@pytest.mark.parametrize("stream", [False, True])
def test_shutdown_ends_an_agent_call_past_its_bound_in_the_clients_shape(s, stream):
    proxy = ProxyThread(agent_config(s, timeout="60s"), shutdown_timeout=1).__enter__()
    try:
        s.orchestrator.push(text_reply(route("hotel_agent")))
        s.agents["hotel_agent"].push(endless_stream(0.05) if stream else hang())
        result: dict = {}

        def call():
            try:
                ask(proxy, stream)
            except openai.APIError as exc:
                result["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.8)
        started = time.monotonic()
        proxy.stop()
        caller.join(10)
        took = time.monotonic() - started
    finally:
        proxy.stop()
    error = result["error"]
    assert "shut down before this request finished" in str(error)
    if not stream:
        assert error.status_code == 503
    assert took < 8
