"""Agent listeners when things go wrong: the orchestrator, an agent, the client, the input."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import urllib.error
import urllib.request

import agents_harness
import aiohttp
import anthropic
import openai
import pytest
from agents_harness import agent_config, agent_url, route
from fakes.providers import hang, malformed_json, reset_mid_stream, status, text_reply
from proxy_harness import ProxyThread

from proxy.agents.call import AgentFailure, AgentTarget, open_call
from proxy.upstream.retry import Backoff

USER = {"role": "user", "content": "Is there a flight to Paris tomorrow?"}


world = pytest.fixture(scope="module")(agents_harness.world)


s = pytest.fixture(agents_harness.fresh_stage)
proxy = pytest.fixture(agents_harness.world_proxy)


def oa(proxy, **kw) -> openai.OpenAI:
    url = agent_url(proxy) + "/v1"
    return openai.OpenAI(base_url=url, api_key="k", max_retries=0, **kw)


def ask(proxy, stream: bool = False):
    raw = oa(proxy).chat.completions.with_raw_response.create(
        model="any", messages=[USER], stream=stream
    )
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content
    return raw.headers["x-plano-agents"], text


def plan(proxy, content: str = USER["content"]) -> dict:
    request = urllib.request.Request(
        agent_url(proxy) + "/routing/v1/chat/completions",
        data=json.dumps({"messages": [{"role": "user", "content": content}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


# --- the orchestrator ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (status(500), "HTTP 500"),
        (text_reply("I think the flight agent should do it."), "no JSON object"),
        (text_reply('{"agents": ["weather_agent"]}'), "has no 'route'"),
        (hang(), "no answer within 1s"),
    ],
    ids=["500", "prose", "wrong-json", "hang"],
)
def test_a_failing_orchestrator_sends_the_request_to_the_default_agent(s, proxy, behaviour, reason):
    s.orchestrator.push(behaviour)
    s.agents["flight_agent"].push(text_reply("AF123."))
    assert ask(proxy) == ("flight_agent", "AF123.")
    assert s.agents["weather_agent"].requests == []
    # The dry run says why.
    s.orchestrator.push(behaviour)
    decision = plan(proxy)
    assert decision["selection"] == "fallback"
    assert decision["agents"] == ["flight_agent"]
    assert reason in decision["fallback"]


def test_unknown_names_are_dropped_and_an_empty_answer_means_the_default(s, proxy):
    s.orchestrator.push(text_reply(route("concierge", "hotel_agent", "hotel_agent")))
    s.agents["hotel_agent"].push(text_reply("Booked."))
    assert ask(proxy) == ("hotel_agent", "Booked.")
    assert len(s.agents["hotel_agent"].requests) == 1  # a repeated name runs once
    s.orchestrator.push(text_reply(route()))
    s.agents["flight_agent"].push(text_reply("Default here."))
    assert ask(proxy) == ("flight_agent", "Default here.")
    # Lenient reading, as upstream: single quotes, a fence.
    s.orchestrator.push(text_reply("```json\n{'route': ['weather_agent']}\n```"))
    s.agents["weather_agent"].push(text_reply("Sunny."))
    assert ask(proxy) == ("weather_agent", "Sunny.")


def test_without_a_default_agent_the_first_one_serves(s):
    config = agent_config(s, default=None)
    with ProxyThread(config) as proxy:
        s.orchestrator.push(text_reply(route()))
        s.agents["weather_agent"].push(text_reply("First."))
        assert ask(proxy) == ("weather_agent", "First.")


# --- agents ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_an_agent_answering_500_is_a_502_naming_it(s, proxy, stream):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(status(500, body={"error": {"message": "db down"}}))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy, stream)
    assert caught.value.status_code == 502
    assert caught.value.body["message"] == "agent 'hotel_agent' answered HTTP 500: db down"


def test_an_agents_4xx_keeps_its_status(s, proxy):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(status(429, body={"error": {"message": "slow down"}}))
    with pytest.raises(openai.RateLimitError) as caught:
        ask(proxy)
    assert "agent 'hotel_agent' answered HTTP 429: slow down" in caught.value.body["message"]


def test_an_anthropic_client_gets_the_error_in_its_shape(s, proxy):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(status(503))
    client = anthropic.Anthropic(base_url=agent_url(proxy), api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="m", max_tokens=10, messages=[USER])
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "error"
    assert "agent 'hotel_agent' answered HTTP 503" in caught.value.body["error"]["message"]


def test_a_failing_intermediate_agent_stops_the_chain(s, proxy):
    s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
    s.agents["weather_agent"].push(status(500))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy)
    assert caught.value.status_code == 502
    assert "agent 'weather_agent' answered HTTP 500" in caught.value.body["message"]
    assert s.agents["flight_agent"].requests == []  # upstream would have gone on


@pytest.mark.parametrize("stream", [False, True])
def test_an_agent_hanging_past_the_listener_timeout_is_a_504(s, proxy, stream):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(hang())
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy, stream)
    assert caught.value.status_code == 504
    assert caught.value.body["message"] == "agent 'hotel_agent' did not answer within 2s"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("stream", [False, True])
def test_an_agent_that_resets_before_its_first_byte_is_a_502(s, proxy, stream):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(reset_mid_stream(after_chunks=0))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy, stream)
    assert caught.value.status_code == 502
    assert "agent 'hotel_agent'" in caught.value.body["message"]


def test_an_intermediate_agent_cut_off_mid_stream_is_a_502(s, proxy):
    s.orchestrator.push(text_reply(route("weather_agent", "flight_agent")))
    s.agents["weather_agent"].push(reset_mid_stream(after_chunks=2))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy, stream=True)
    assert caught.value.status_code == 502
    assert caught.value.body["message"] == (
        "agent 'weather_agent' broke off: the response was cut off"
    )
    assert s.agents["flight_agent"].requests == []


def test_a_malformed_answer_is_a_502(s, proxy):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(malformed_json())
    with pytest.raises(openai.APIStatusError) as caught:
        ask(proxy)
    assert caught.value.status_code == 502
    assert (
        "agent 'hotel_agent' sent an answer that is not a chat completion"
        in (caught.value.body["message"])
    )


def test_a_reset_after_the_first_byte_ends_the_stream_with_an_error_event(s, proxy):
    s.orchestrator.push(text_reply(route("hotel_agent")), text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(text_reply("one two three four five"))
    s.agents["hotel_agent"].push(reset_mid_stream(after_chunks=2))
    stream = oa(proxy).chat.completions.create(model="any", messages=[USER], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    stream = oa(proxy).chat.completions.create(model="any", messages=[USER], stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "agent 'hotel_agent' failed mid-stream" in str(caught.value)
    # An Anthropic client gets an Anthropic error event.
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(reset_mid_stream(after_chunks=2))
    client = anthropic.Anthropic(base_url=agent_url(proxy), api_key="k", max_retries=0)
    with (
        pytest.raises(anthropic.APIStatusError) as caught_anthropic,
        client.messages.stream(model="m", max_tokens=10, messages=[USER]) as events,
    ):
        for _ in events:
            pass
    assert "agent 'hotel_agent' failed mid-stream" in str(caught_anthropic.value)


def test_a_client_that_disconnects_cancels_the_agent_call(s, proxy):
    s.orchestrator.push(text_reply(route("hotel_agent")))
    s.agents["hotel_agent"].push(hang())
    with pytest.raises(openai.APITimeoutError):
        oa(proxy, timeout=0.5).chat.completions.create(model="any", messages=[USER])
    deadline = time.monotonic() + 3
    while s.agents["hotel_agent"].disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    # Well before the listener's 2 s timeout, the agent saw its caller go.
    assert s.agents["hotel_agent"].disconnects == 1
    assert len(s.agents["hotel_agent"].requests) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_agent_nobody_listens_for_is_retried_then_a_502(s):
    url = f"http://127.0.0.1:{_closed_port()}"
    config = agent_config(s, urls={"hotel_agent": url})
    with ProxyThread(config) as proxy:
        s.orchestrator.push(text_reply(route("hotel_agent")))
        with pytest.raises(openai.APIStatusError) as caught:
            ask(proxy)
    assert caught.value.status_code == 502
    assert caught.value.body["message"].startswith(
        f"agent 'hotel_agent' at {url}/v1/chat/completions:"
    )
    assert "cannot connect" in caught.value.body["message"]


class _CountingBackoff(Backoff):
    def __init__(self):
        super().__init__(base_s=0.0, cap_s=0.0)
        object.__setattr__(self, "waits", [])

    def delay(self, attempt, retry_after=None):
        self.waits.append(attempt)
        return 0.0


def test_a_connect_error_is_retried_until_the_agent_listens():
    port = _closed_port()
    target = AgentTarget("late_agent", f"http://127.0.0.1:{port}/v1/chat/completions")

    async def main():
        backoff = _CountingBackoff()
        async with aiohttp.ClientSession() as session:
            timeout = aiohttp.ClientTimeout(total=2)
            with pytest.raises(AgentFailure) as caught:
                await open_call(session, target, b"{}", {}, timeout, 2, backoff)
            assert caught.value.outcome == "connect error"
            assert backoff.waits == [1, 2]  # two retries, then the failure

            # An agent that starts listening between attempts gets the request.
            async def answer(request):
                return aiohttp.web.json_response({"ok": True})

            app = aiohttp.web.Application()
            app.router.add_post("/v1/chat/completions", answer)
            runner = aiohttp.web.AppRunner(app)
            await runner.setup()
            retried = _StartOnRetry(runner, port)
            response = await open_call(session, target, b"{}", {}, timeout, 2, retried)
            assert response.status == 200
            assert retried.waits == [1]
            response.release()
            await runner.cleanup()

    asyncio.run(main())


class _StartOnRetry(Backoff):
    def __init__(self, runner, port):
        super().__init__()
        object.__setattr__(self, "waits", [])
        object.__setattr__(self, "_start", (runner, port))

    def delay(self, attempt, retry_after=None):
        self.waits.append(attempt)
        runner, port = self._start
        asyncio.get_running_loop().create_task(
            aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
        )
        return 0.2


# --- hostile input ---------------------------------------------------------------------


def _post(proxy, path: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        agent_url(proxy) + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        response = urllib.request.urlopen(request, timeout=10)
        return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


HOSTILE = [
    b"",
    b"not json",
    b"[1, 2]",
    b'{"model": "m"}',
    b'{"model": "m", "messages": "hi"}',
    b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}',
    b'{"model": "m", "messages": [{"role": "user", "content": {"nested": true}}]}',
    b'{"model": 7, "messages": [{"role": "user", "content": "x"}]}',
    b'{"model": "m", "input": 5}',
    b'{"model": "m", "max_tokens": "ten", "messages": [{"role": "user", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": "x"}], "stream": tr',  # cut off
    b'{"model": "m", "messages": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",  # deep
]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
@pytest.mark.parametrize("routing", [False, True], ids=["serve", "dry-run"])
def test_hostile_input_gets_a_400_in_the_clients_shape(s, proxy, path, routing, caplog):
    caplog.set_level(logging.WARNING, logger="plano")
    for data in HOSTILE:
        code, body = _post(proxy, ("/routing" if routing else "") + path, data)
        if routing and code == 200:
            continue  # the dry run needs no model, so some bodies are fine there
        assert code == 400, (data, body)
        if path == "/v1/messages":
            assert body["type"] == "error"
            assert body["error"]["type"] == "invalid_request_error"
        else:
            assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["message"]
    # Nothing of it reached an agent or the orchestrator, and nothing was logged as a fault.
    assert all(not state.requests for state in s.agents.values())
    assert s.orchestrator.requests == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_unknown_paths_and_methods_are_json_errors(proxy):
    code, body = _post(proxy, "/v1/embeddings", b"{}")
    assert code == 404
    assert body["error"]["message"] == "POST /v1/embeddings: Not Found"
