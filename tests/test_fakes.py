"""The fake upstreams speak the real protocols: the official SDKs must accept them unchanged."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from fakes.providers import (
    FakeProvider,
    anthropic_app,
    drip,
    endless_line,
    endless_stream,
    giant_answer,
    hang,
    malformed_json,
    ok,
    openai_app,
    reset_mid_stream,
    slow,
    status,
    text_reply,
    tool_call,
)
from fakes.server_thread import ServerThread

KEY = "sk-test-key"
USER = [{"role": "user", "content": "hello there world"}]
OPENAI_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {
                "type": "object",
                "properties": {"echo": {"type": "string"}},
                "required": ["echo"],
                "additionalProperties": False,
            },
            # strict: the SDK's stream helper only auto-parses strict tools.
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {"name": "other", "parameters": {"type": "object", "properties": {}}},
    },
]
ANTHROPIC_TOOLS: list[Any] = [
    {
        "name": "lookup",
        "description": "Look something up.",
        "input_schema": {"type": "object", "properties": {"echo": {"type": "string"}}},
    },
    {"name": "other", "input_schema": {"type": "object", "properties": {}}},
]


@dataclass
class Fake:
    state: FakeProvider
    url: str


@pytest.fixture
def oai() -> Iterator[Fake]:
    state = FakeProvider(expected_key=KEY)
    with ServerThread(openai_app(state)) as server:
        yield Fake(state, server.base_url)


@pytest.fixture
def ant() -> Iterator[Fake]:
    state = FakeProvider(expected_key=KEY)
    with ServerThread(anthropic_app(state)) as server:
        yield Fake(state, server.base_url)


def oai_client(fake: Fake, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=0, **kwargs)


def ant_client(fake: Fake, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("timeout", 5.0)
    return anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0, **kwargs)


def raw_post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict, bytes]:
    """Bypass the SDKs to check the bytes on the wire."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("expected the SDK to raise")


def chain_text(exc: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " | ".join(parts)


# --------------------------------------------------------------------------- OpenAI


def test_openai_echo_and_recorded_request(oai: Fake) -> None:
    oai.state.cached_tokens = 3
    reply = oai_client(oai).chat.completions.create(
        model="gpt-upstream",
        messages=[{"role": "system", "content": "be brief"}, *USER],
    )
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-upstream"
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello there world"
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 4)
    assert reply.usage.total_tokens == 9
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 3

    seen = oai.state.last
    assert (seen.method, seen.path) == ("POST", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body["model"] == "gpt-upstream"


def test_openai_content_parts_are_joined(oai: Fake) -> None:
    parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    reply = oai_client(oai).chat.completions.create(
        model="m", messages=[{"role": "user", "content": parts}]
    )
    assert reply.choices[0].message.content == "echo: one two"


def test_openai_wrong_key_is_401_in_openai_shape(oai: Fake) -> None:
    client = openai.OpenAI(base_url=oai.url + "/v1", api_key="wrong", max_retries=0)
    err = raised(lambda: client.chat.completions.create(model="m", messages=USER))
    assert isinstance(err, openai.AuthenticationError)
    assert err.status_code == 401
    assert err.code == "invalid_api_key"
    assert set(err.response.json()["error"]) == {"message", "type", "param", "code"}


def test_openai_forced_tool_then_tool_result(oai: Fake) -> None:
    client = oai_client(oai)
    named = {"type": "function", "function": {"name": "other"}}
    for choice, expected in (("required", "lookup"), (named, "other")):
        reply = client.chat.completions.create(
            model="m", messages=USER, tools=OPENAI_TOOLS, tool_choice=choice
        )
        message = reply.choices[0].message
        assert reply.choices[0].finish_reason == "tool_calls"
        assert message.content is None
        assert message.tool_calls is not None
        call = message.tool_calls[0]
        assert call.id.startswith("call_")
        assert call.type == "function"
        assert call.function.name == expected
        assert json.loads(call.function.arguments) == {"echo": "hello there world"}

    auto = client.chat.completions.create(model="m", messages=USER, tools=OPENAI_TOOLS)
    assert auto.choices[0].message.content == "echo: hello there world"

    follow_up = client.chat.completions.create(
        model="m",
        messages=[
            *USER,
            reply.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "42 degrees"},
        ],
    )
    assert follow_up.choices[0].message.content == "tool said: 42 degrees"


def test_openai_max_tokens_truncates_with_length(oai: Fake) -> None:
    reply = oai_client(oai).chat.completions.create(model="m", messages=USER, max_tokens=2)
    assert reply.choices[0].message.content == "echo: hello"
    assert reply.choices[0].finish_reason == "length"


def test_openai_stream_chunks_and_usage(oai: Fake) -> None:
    client = oai_client(oai)
    chunks = list(
        client.chat.completions.create(
            model="m", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there world"
    assert len(chunks) == 1 + 4 + 1 + 1  # role, one per word, finish, usage
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4

    without = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert all(c.choices and c.usage is None for c in without)


def test_openai_stream_wire_format(oai: Fake) -> None:
    code, headers, body = raw_post(
        oai.url + "/v1/chat/completions",
        {"model": "m", "messages": USER, "stream": True},
        {"Authorization": f"Bearer {KEY}"},
    )
    assert code == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    events = body.decode().split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-2])
    assert "usage" not in json.loads(events[0][len("data: ") :])


def test_openai_stream_helper_accumulates_tool_call(oai: Fake) -> None:
    with oai_client(oai).chat.completions.stream(
        model="m", messages=USER, tools=OPENAI_TOOLS, tool_choice="required"
    ) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_completion()
    assert events.count("tool_calls.function.arguments.delta") >= 2
    assert "tool_calls.function.arguments.done" in events
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup"
    assert call.function.parsed_arguments == {"echo": "hello there world"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_openai_scripted_replies_and_models(oai: Fake) -> None:
    client = oai_client(oai)
    oai.state.push(text_reply("scripted words"), tool_call("pick", {"n": 1}))
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == (
        "scripted words"
    )
    call = client.chat.completions.create(model="m", messages=USER).choices[0].message.tool_calls
    assert call is not None
    assert (call[0].function.name, json.loads(call[0].function.arguments)) == ("pick", {"n": 1})
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "gpt-4o"]
    assert oai.state.last.path == "/v1/models"


def test_openai_429_retry_after(oai: Fake) -> None:
    client = oai_client(oai)
    oai.state.push(status(429, retry_after=1), ok())
    err = raised(lambda: client.chat.completions.create(model="m", messages=USER))
    assert isinstance(err, openai.RateLimitError)
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "1"
    assert err.code == "rate_limit_exceeded"
    # One script entry per request: the next request is normal again.
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content


def test_openai_500_and_custom_body(oai: Fake) -> None:
    client = oai_client(oai)
    oai.state.push(status(500), status(503, body={"error": {"message": "custom"}}))
    err = raised(lambda: client.chat.completions.create(model="m", messages=USER))
    assert isinstance(err, openai.InternalServerError)
    assert err.status_code == 500
    assert err.response.json()["error"]["type"] == "server_error"
    err = raised(lambda: client.chat.completions.create(model="m", messages=USER))
    assert isinstance(err, openai.InternalServerError)
    assert err.status_code == 503
    assert err.response.json() == {"error": {"message": "custom"}}


def test_openai_malformed_json(oai: Fake) -> None:
    oai.state.push(malformed_json())
    err = raised(lambda: oai_client(oai).chat.completions.create(model="m", messages=USER))
    assert isinstance(err, ValueError)  # json.JSONDecodeError


def test_openai_reset_mid_stream(oai: Fake) -> None:
    oai.state.push(reset_mid_stream(after_chunks=2))
    received: list[Any] = []

    def consume() -> None:
        stream = oai_client(oai).chat.completions.create(model="m", messages=USER, stream=True)
        received.extend(stream)

    err = raised(consume)
    assert len(received) == 2
    assert isinstance(err, openai.APIConnectionError)
    assert "incomplete chunked read" in chain_text(err)


def test_openai_reset_non_streaming(oai: Fake) -> None:
    oai.state.push(reset_mid_stream())
    err = raised(lambda: oai_client(oai).chat.completions.create(model="m", messages=USER))
    assert isinstance(err, openai.APIConnectionError)
    assert "peer closed connection" in chain_text(err)


def test_openai_slow_still_answers(oai: Fake) -> None:
    client = oai_client(oai)
    oai.state.push(slow(0.2), slow(0.2))
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_openai_hang_times_out(oai: Fake) -> None:
    oai.state.push(hang())
    client = oai_client(oai, timeout=0.5)
    err = raised(lambda: client.chat.completions.create(model="m", messages=USER))
    assert isinstance(err, openai.APITimeoutError)
    assert len(oai.state.requests) == 1


def test_openai_bad_request_and_unknown_path(oai: Fake) -> None:
    client = oai_client(oai)
    err = raised(lambda: client.chat.completions.create(model="m", messages=[]))
    assert isinstance(err, openai.BadRequestError)
    assert err.response.json()["error"]["type"] == "invalid_request_error"
    code, _headers, body = raw_post(oai.url + "/v1/completions", {}, {})
    assert code == 404
    assert "error" in json.loads(body)
    assert oai.state.last.path == "/v1/completions"


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_echo_and_recorded_request(ant: Fake) -> None:
    ant.state.cached_tokens = 2
    reply = ant_client(ant).messages.create(
        model="claude-upstream", max_tokens=100, system="be brief", messages=USER
    )
    assert reply.id.startswith("msg_")
    assert (reply.type, reply.role, reply.model) == ("message", "assistant", "claude-upstream")
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "echo: hello there world"
    assert (reply.stop_reason, reply.stop_sequence) == ("end_turn", None)
    assert reply.usage.input_tokens == 5 - 2  # cache reads are excluded, as upstream does
    assert reply.usage.cache_read_input_tokens == 2
    assert reply.usage.cache_creation_input_tokens == 0
    assert reply.usage.output_tokens == 4

    seen = ant.state.last
    assert (seen.method, seen.path) == ("POST", "/v1/messages")
    # anthropic SDK 2.x sends the key as a bearer token; a proxy may use either header.
    assert KEY in (seen.headers.get("x-api-key"), seen.headers.get("authorization", "")[7:])
    assert seen.headers["anthropic-version"]
    assert seen.body["model"] == "claude-upstream"


def test_anthropic_auth_and_version_errors(ant: Fake) -> None:
    client = anthropic.Anthropic(base_url=ant.url, api_key="wrong", max_retries=0)
    err = raised(lambda: client.messages.create(model="c", max_tokens=10, messages=USER))
    assert isinstance(err, anthropic.AuthenticationError)
    assert err.response.json()["type"] == "error"
    assert err.response.json()["error"]["type"] == "authentication_error"

    body = {"model": "c", "max_tokens": 10, "messages": USER}
    code, _headers, raw = raw_post(ant.url + "/v1/messages", body, {})
    assert code == 401
    assert json.loads(raw)["error"]["message"] == "x-api-key header is required"
    code, _headers, raw = raw_post(ant.url + "/v1/messages", body, {"x-api-key": KEY})
    assert code == 400
    assert "anthropic-version" in json.loads(raw)["error"]["message"]
    version = {"anthropic-version": "2023-06-01"}
    code, _headers, raw = raw_post(ant.url + "/v1/messages", body, {"x-api-key": KEY, **version})
    assert code == 200
    code, _headers, raw = raw_post(ant.url + "/v1/messages", body, {"x-api-key": "no", **version})
    assert code == 401

    ant.state.expected_key = None
    accepted = client.messages.create(model="c", max_tokens=10, messages=USER)
    assert accepted.content[0].type == "text"


def test_anthropic_forced_tool_then_tool_result(ant: Fake) -> None:
    client = ant_client(ant)
    for choice, expected in (
        ({"type": "any"}, "lookup"),
        ({"type": "tool", "name": "other"}, "other"),
    ):
        reply = client.messages.create(
            model="c", max_tokens=100, messages=USER, tools=ANTHROPIC_TOOLS, tool_choice=choice
        )
        assert reply.stop_reason == "tool_use"
        block = reply.content[0]
        assert block.type == "tool_use"
        assert block.id.startswith("toolu_")
        assert (block.name, block.input) == (expected, {"echo": "hello there world"})

    auto = client.messages.create(model="c", max_tokens=100, messages=USER, tools=ANTHROPIC_TOOLS)
    assert auto.content[0].type == "text"

    follow_up = client.messages.create(
        model="c",
        max_tokens=100,
        messages=[
            *USER,
            {"role": "assistant", "content": [b.model_dump() for b in reply.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": block.id, "content": "42 degrees"}
                ],
            },
        ],
    )
    assert follow_up.content[0].type == "text"
    assert follow_up.content[0].text == "tool said: 42 degrees"


def test_anthropic_max_tokens_stop_reason(ant: Fake) -> None:
    reply = ant_client(ant).messages.create(model="c", max_tokens=3, messages=USER)
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "echo: hello there"
    assert reply.stop_reason == "max_tokens"


def test_anthropic_stream_helper_text(ant: Fake) -> None:
    with ant_client(ant).messages.stream(model="c", max_tokens=100, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: hello there world"
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4


def test_anthropic_stream_helper_tool_use(ant: Fake) -> None:
    with ant_client(ant).messages.stream(
        model="c", max_tokens=100, messages=USER, tools=ANTHROPIC_TOOLS, tool_choice={"type": "any"}
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    block = final.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("lookup", {"echo": "hello there world"})


def test_anthropic_stream_wire_format(ant: Fake) -> None:
    code, headers, body = raw_post(
        ant.url + "/v1/messages",
        {"model": "c", "max_tokens": 100, "messages": USER, "stream": True},
        {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    assert code == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    names = []
    for event in body.decode().strip().split("\n\n"):
        name_line, data_line = event.split("\n")
        name = name_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name
        names.append(name)
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_scripted_replies_and_models(ant: Fake) -> None:
    client = ant_client(ant)
    ant.state.push(text_reply("scripted"), tool_call("pick", '{"n": 1}'))
    first = client.messages.create(model="c", max_tokens=10, messages=USER)
    assert first.content[0].type == "text"
    assert first.content[0].text == "scripted"
    second = client.messages.create(model="c", max_tokens=10, messages=USER)
    assert second.content[0].type == "tool_use"
    assert (second.content[0].name, second.content[0].input) == ("pick", {"n": 1})
    assert [m.id for m in client.models.list()] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    count = client.messages.count_tokens(model="c", messages=USER)
    assert count.input_tokens == 3


def test_anthropic_429_retry_after_and_overloaded(ant: Fake) -> None:
    client = ant_client(ant)
    ant.state.push(status(429, retry_after=1), status(529), status(500))
    err = raised(lambda: client.messages.create(model="c", max_tokens=10, messages=USER))
    assert isinstance(err, anthropic.RateLimitError)
    assert err.status_code == 429
    assert err.response.headers["retry-after"] == "1"
    assert err.response.json()["error"]["type"] == "rate_limit_error"
    err = raised(lambda: client.messages.create(model="c", max_tokens=10, messages=USER))
    assert isinstance(err, anthropic.APIStatusError)
    assert err.status_code == 529
    assert err.response.json()["error"]["type"] == "overloaded_error"
    err = raised(lambda: client.messages.create(model="c", max_tokens=10, messages=USER))
    assert isinstance(err, anthropic.InternalServerError)
    assert err.response.json()["error"]["type"] == "api_error"


def test_anthropic_malformed_json(ant: Fake) -> None:
    ant.state.push(malformed_json())
    client = ant_client(ant)
    err = raised(lambda: client.messages.create(model="c", max_tokens=10, messages=USER))
    assert isinstance(err, ValueError)  # json.JSONDecodeError


def test_anthropic_malformed_sse(ant: Fake) -> None:
    ant.state.push(malformed_json(sse=True))

    def consume() -> None:
        with ant_client(ant).messages.stream(model="c", max_tokens=10, messages=USER) as stream:
            stream.get_final_message()

    assert isinstance(raised(consume), ValueError)


def test_anthropic_reset_mid_stream(ant: Fake) -> None:
    ant.state.push(reset_mid_stream(after_chunks=3))
    received: list[str] = []

    def consume() -> None:
        with ant_client(ant).messages.stream(model="c", max_tokens=100, messages=USER) as stream:
            received.extend(event.type for event in stream)

    err = raised(consume)
    # The third event is the ping, which the SDK does not surface.
    assert received == ["message_start", "content_block_start"]
    assert "incomplete chunked read" in chain_text(err)


def test_anthropic_slow_still_answers(ant: Fake) -> None:
    client = ant_client(ant)
    ant.state.push(slow(0.2), slow(0.1, between_chunks_s=0.02))
    assert client.messages.create(model="c", max_tokens=10, messages=USER).content
    with client.messages.stream(model="c", max_tokens=10, messages=USER) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"


def test_anthropic_hang_times_out(ant: Fake) -> None:
    ant.state.push(hang())
    client = ant_client(ant, timeout=0.5)
    err = raised(lambda: client.messages.create(model="c", max_tokens=10, messages=USER))
    assert isinstance(err, anthropic.APITimeoutError)


# ------------------------------------------------------------- what a gateway must bound


@pytest.mark.parametrize("declared", [False, True])
def test_a_giant_answer_is_a_valid_answer_of_that_size(oai: Fake, ant: Fake, declared) -> None:
    size = 3 * 1024 * 1024 + 7
    oai.state.push(giant_answer(size, content_length=declared))
    reply = oai_client(oai).chat.completions.create(model="m", messages=USER)
    assert reply.choices[0].message.content == "a" * size
    assert reply.usage.completion_tokens == 1
    ant.state.push(giant_answer(size, content_length=declared))
    message = ant_client(ant).messages.create(model="m", max_tokens=5, messages=USER)
    assert message.content[0].text == "a" * size


def test_an_endless_stream_runs_until_the_client_leaves(oai: Fake, ant: Fake) -> None:
    oai.state.push(endless_stream(0))
    stream = oai_client(oai).chat.completions.create(model="m", messages=USER, stream=True)
    chunks = [chunk for chunk, _ in zip(stream, range(50), strict=False)]
    stream.close()
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.choices[0].delta.content for c in chunks[1:]} == {"more"}
    ant.state.push(endless_stream(0))
    with ant_client(ant).messages.stream(model="m", max_tokens=5, messages=USER) as events:
        texts = [
            e.delta.text
            for e, _ in zip(events, range(50), strict=False)
            if e.type == "content_block_delta"
        ]
    assert set(texts) == {"more"}
    deadline = time.monotonic() + 5
    while oai.state.disconnects + ant.state.disconnects < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (oai.state.disconnects, ant.state.disconnects) == (1, 1)


def test_an_endless_line_is_one_unfinished_data_line(oai: Fake) -> None:
    oai.state.push(endless_line(size=200_000))
    conn = http.client.HTTPConnection(oai.url.removeprefix("http://"), timeout=5)
    body = json.dumps({"model": "m", "messages": USER, "stream": True})
    conn.request("POST", "/v1/chat/completions", body, {"Authorization": f"Bearer {KEY}"})
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead) as cut:  # and then the connection closed
        response.read()
    assert cut.value.partial == b"data: " + b"a" * 200_000  # no line end
    conn.close()


def test_a_drip_sends_the_normal_answer_a_byte_at_a_time(oai: Fake) -> None:
    oai.state.push(drip(0.0))
    reply = oai_client(oai).chat.completions.create(model="m", messages=USER)
    assert reply.choices[0].message.content == "echo: hello there world"


# --------------------------------------------------------------------------- ServerThread


def test_stop_releases_a_hung_request_quickly() -> None:
    state = FakeProvider()
    server = ServerThread(openai_app(state)).start()
    state.push(hang())
    outcome: list[BaseException | None] = []

    def call() -> None:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
        try:
            client.chat.completions.create(model="m", messages=USER, timeout=10)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 2
    while not state.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    server.stop()  # idempotent
    caller.join(2)
    assert time.monotonic() - started < 1.5
    assert not caller.is_alive()
    assert len(outcome) == 1
