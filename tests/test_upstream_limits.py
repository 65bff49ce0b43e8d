"""What an upstream sends cannot make the gateway hold more than its limit.

Stand-in providers send giant answers, endless SSE lines, endless streams and slow drips
(tests/fakes/providers.py); the official SDKs are the clients. The limit is set low
(overrides.max_upstream_response_bytes: 4 MiB) so the tests stay fast; test_memory_bounds.py
measures the gateway's memory against 300 MB with the default limit.
"""

from __future__ import annotations

import asyncio
import json
import time

import anthropic
import openai
import pytest
from aiohttp import web
from fakes.providers import (
    FakeProvider,
    drip,
    endless_line,
    endless_stream,
    giant_answer,
)
from fakes.server_thread import ServerThread
from hypothesis import given
from hypothesis import strategies as st
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams

from proxy.gateway.answer import PASSTHROUGH_HOLD
from proxy.gateway.exchange import MAX_CAPTURED_RESPONSE, Outcome
from proxy.telemetry.settings import WorkerSettings

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"
LIMIT = 4 * 1024 * 1024
USER = [{"role": "user", "content": "one two three"}]


def limits_config(upstreams, limit: int = LIMIT, timeout: str = "10s"):
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{type: model, port: 12000, max_retries: 2, timeout: {timeout}}}]
        model_providers:
          - model: openai/gpt-4o
            base_url: {upstreams["openai"][1]}/v1
            access_key: $OPENAI_KEY
            default: true
          - model: anthropic/claude-sonnet-4-6
            base_url: {upstreams["anthropic"][1]}
            access_key: $ANTHROPIC_KEY
        model_aliases:
          smart: {{target: gpt-4o, fallbacks: [anthropic/claude-sonnet-4-6]}}
        overrides:
          max_upstream_response_bytes: {limit}
        """,
        env={"OPENAI_KEY": OPENAI_KEY, "ANTHROPIC_KEY": ANTHROPIC_KEY},
    )


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


@pytest.fixture
def fakes(upstreams) -> dict[str, FakeProvider]:
    for state, _ in upstreams.values():
        state.clear()
    return {name: state for name, (state, _) in upstreams.items()}


@pytest.fixture
def seen() -> list:
    return []


@pytest.fixture
def proxy(upstreams, fakes, seen):
    with ProxyThread(limits_config(upstreams), observers=[seen.append]) as running:
        yield running


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def last(seen: list):
    """The latest request's record: observers run when its handler ends, which for a stream
    may be a moment after the client has read its end."""
    assert wait_for(lambda: seen)
    return seen[-1]


def oa(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="client-key", max_retries=0)


def an(proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="client-key", max_retries=0)


# --- non-streaming answers -----------------------------------------------------------------


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_translated_answer_over_the_limit_is_a_502_in_anthropic_shape(
    proxy, fakes, seen, declared
):
    # An Anthropic client, an OpenAI upstream: the answer must be held whole to translate.
    fakes["openai"].push(giant_answer(LIMIT + 1, content_length=declared))
    with pytest.raises(anthropic.APIStatusError) as info:
        an(proxy).messages.create(model="gpt-4o", max_tokens=10, messages=USER)
    assert info.value.status_code == 502
    assert info.value.body["type"] == "error"
    message = info.value.body["error"]["message"]
    assert message == (
        f"openai/gpt-4o: the answer is larger than {LIMIT} bytes "
        "(overrides.max_upstream_response_bytes)"
    )
    assert len(fakes["openai"].requests) == 1  # not retried: it would be paid for again
    assert last(seen).attempts[0].outcome == "too large"


def test_a_passthrough_answer_declared_over_the_limit_is_a_502_in_openai_shape(proxy, fakes):
    fakes["openai"].push(giant_answer(LIMIT + 1, content_length=True))
    with pytest.raises(openai.APIStatusError) as info:
        oa(proxy).chat.completions.create(model="gpt-4o", messages=USER)
    assert info.value.status_code == 502
    assert f"the answer is larger than {LIMIT} bytes" in info.value.body["message"]
    assert info.value.body["type"] == "api_error"


def test_an_answer_over_the_limit_fails_over_to_the_next_model(proxy, fakes, seen):
    fakes["openai"].push(giant_answer(LIMIT + 1, content_length=True))
    reply = oa(proxy).chat.completions.create(model="smart", messages=USER)
    assert reply.choices[0].message.content == "echo: one two three"
    assert len(fakes["openai"].requests) == 1
    assert [a.outcome for a in last(seen).attempts] == ["too large", "ok"]
    assert last(seen).model == "anthropic/claude-sonnet-4-6"


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_large_passthrough_answer_is_relayed_whole_and_its_usage_read(
    proxy, fakes, seen, client, declared
):
    # Larger than what passthrough holds, within the limit: relayed as it arrives, its
    # model renamed as x-plano-model says (a declared length follows the renaming).
    size = PASSTHROUGH_HOLD * 3
    fakes[client].push(giant_answer(size, content_length=declared))
    if client == "openai":
        reply = oa(proxy).chat.completions.create(model="gpt-4o", messages=USER)
        text = reply.choices[0].message.content
        assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 1)
        assert reply.model == "openai/gpt-4o"
    else:
        reply = an(proxy).messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=USER)
        text = reply.content[0].text
        assert reply.model == "anthropic/claude-sonnet-4-6"
    assert text == "a" * size
    record = last(seen)
    assert (record.status, record.passthrough, record.outcome) == (200, True, Outcome.OK)
    assert (record.usage.input_tokens, record.usage.output_tokens) == (3, 1)


def test_a_chunked_passthrough_answer_over_the_limit_is_cut_and_recorded(proxy, fakes, seen):
    # Undeclared size: the 200 is out before the size is known, so the body is cut short,
    # and the client's HTTP library reports an incomplete body rather than a whole answer.
    fakes["openai"].push(giant_answer(LIMIT * 16))
    with pytest.raises(openai.APIConnectionError):
        oa(proxy).chat.completions.create(model="gpt-4o", messages=USER)
    record = last(seen)
    assert record.status == 200
    assert record.outcome is Outcome.STREAM_ERROR
    assert record.error == (
        f"openai/gpt-4o: the answer is larger than {LIMIT} bytes "
        "(overrides.max_upstream_response_bytes); cut off"
    )
    # The gateway stopped reading it: the provider's next writes fail.
    assert wait_for(lambda: fakes["openai"].disconnects == 1)


def test_a_slow_drip_answer_ends_at_the_listener_timeout(upstreams, fakes):
    with ProxyThread(limits_config(upstreams, timeout="1s")) as proxy:
        fakes["openai"].push(drip(0.05))  # one byte every 50 ms: ~30 s for the answer
        with pytest.raises(openai.APIStatusError) as info:
            oa(proxy).chat.completions.create(model="gpt-4o", messages=USER)
    assert info.value.status_code == 504


def test_a_stream_dripping_its_first_event_ends_at_the_listener_timeout(upstreams, fakes):
    with ProxyThread(limits_config(upstreams, timeout="1s")) as proxy:
        # The first event is ~200 bytes: ~10 s at one byte every 50 ms, each byte within
        # the socket read timeout.
        fakes["openai"].push(drip(0.05))
        with pytest.raises(openai.APIStatusError) as info:
            oa(proxy).chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    assert info.value.status_code == 504
    assert "no stream event within 1 s" in info.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_arriving_one_byte_at_a_time_is_whole(proxy, fakes, seen, stream):
    fakes["openai"].push(drip(0.0005))
    if stream:
        chunks = oa(proxy).chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = oa(proxy).chat.completions.create(model="gpt-4o", messages=USER)
        text = reply.choices[0].message.content
    assert text == "echo: one two three"
    # The OpenAI SDK hangs up at [DONE], maybe before the provider's last bytes arrive:
    # the answer was whole all the same.
    assert (last(seen).status, last(seen).outcome) == (200, Outcome.OK)


# --- streams -----------------------------------------------------------------------------


def test_an_endless_sse_line_before_the_first_event_is_a_502(proxy, fakes, seen):
    fakes["openai"].push(endless_line())
    with pytest.raises(openai.APIStatusError) as info:
        oa(proxy).chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    assert info.value.status_code == 502
    assert f"larger than {LIMIT} bytes" in info.value.body["message"]
    assert len(fakes["openai"].requests) == 1
    assert last(seen).outcome is Outcome.ERROR


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_an_endless_sse_line_mid_stream_ends_with_an_error_event(proxy, fakes, seen, client):
    # After the opening event the stream is committed: it ends with an error event in the
    # client's format (passthrough for OpenAI, translated for Anthropic), and SDKs raise.
    fakes["openai"].push(endless_line(opening=True))
    if client == "openai":
        stream = oa(proxy).chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        with pytest.raises(openai.APIError) as info:
            list(stream)
    else:
        with (
            pytest.raises(anthropic.APIStatusError) as info,
            an(proxy).messages.stream(model="gpt-4o", max_tokens=10, messages=USER) as events,
        ):
            list(events)
    assert f"sent an event longer than {LIMIT} bytes" in str(info.value)
    record = last(seen)
    assert (record.status, record.outcome) == (200, Outcome.STREAM_ERROR)
    assert record.error == f"openai/gpt-4o: sent an event longer than {LIMIT} bytes"


def test_a_responses_stream_is_bounded_like_an_answer(upstreams, fakes, seen):
    # The Responses API ends a stream with the whole output, so the gateway keeps it all:
    # an endless stream must end at the limit, with response.failed.
    limit = 64 * 1024
    with ProxyThread(limits_config(upstreams, limit=limit), observers=[seen.append]) as proxy:
        fakes["openai"].push(endless_stream(0))
        events = list(
            oa(proxy).responses.create(model="gpt-4o", input="one two three", stream=True)
        )
    assert events[-1].type == "response.failed"
    assert f"more than {limit} bytes of answer" in events[-1].response.error.message
    assert last(seen).outcome is Outcome.STREAM_ERROR


def test_the_telemetry_capture_of_a_relayed_answer_is_bounded(upstreams, fakes, seen, tmp_path):
    worker = WorkerSettings(store_path=str(tmp_path / "traces.db"), admin_port=0)
    with ProxyThread(limits_config(upstreams), observers=[seen.append], telemetry=worker) as p:
        fakes["openai"].push(giant_answer(PASSTHROUGH_HOLD * 3))
        reply = oa(p).chat.completions.create(model="gpt-4o", messages=USER)
    assert len(reply.choices[0].message.content) == PASSTHROUGH_HOLD * 3
    record = last(seen)
    assert record.capture
    assert record.response_captured == MAX_CAPTURED_RESPONSE
    assert record.response_truncated


def test_a_passthrough_stream_is_not_bounded_by_the_limit(upstreams, fakes):
    # Passthrough holds one event of a stream, never the stream: it runs past the limit
    # for as long as the client reads it.
    limit = 64 * 1024
    with ProxyThread(limits_config(upstreams, limit=limit)) as proxy:
        fakes["openai"].push(endless_stream(0))
        stream = oa(proxy).chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        received = 0
        for chunk in stream:
            received += len(chunk.choices[0].delta.content or "") if chunk.choices else 0
            if received > 2 * limit:
                break
        stream.close()
    assert received > 2 * limit


# --- searched, not replayed: any split, any event sizes around the limit ------------------

SMALL_LIMIT = 4096


class SplitStream:
    """An OpenAI-format provider sending each scripted stream in the scripted pieces."""

    def __init__(self) -> None:
        self.next: list[bytes] = []

    def app(self) -> web.Application:
        async def handler(request: web.Request) -> web.StreamResponse:
            await request.read()
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for piece in self.next:
                await response.write(piece)
                await asyncio.sleep(0)
            await response.write_eof()
            return response

        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        return app


def chunk_json(delta: dict, finish: str | None = None) -> bytes:
    return json.dumps(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    ).encode()


@pytest.fixture(scope="module")
def split_proxy():
    upstream = SplitStream()
    with ServerThread(upstream.app()) as server:
        config = config_from_yaml(
            f"""\
            version: v0.4.0
            listeners: [{{type: model, port: 12000, max_retries: 0, timeout: 5s}}]
            model_providers: [{{model: openai/m, base_url: "{server.base_url}/v1"}}]
            overrides: {{max_upstream_response_bytes: {SMALL_LIMIT}}}
            """
        )
        with ProxyThread(config) as proxy:
            yield upstream, proxy


@given(
    texts=st.lists(st.integers(min_value=0, max_value=6000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
)
def test_any_split_of_events_around_the_limit_is_whole_or_a_clean_error(split_proxy, texts, cuts):
    upstream, proxy = split_proxy
    deltas = [{"role": "assistant", "content": "x" * texts[0]}] + [
        {"content": "y" * n} for n in texts[1:]
    ]
    events = [chunk_json(d) for d in deltas] + [chunk_json({}, "stop")]
    body = b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    points = sorted({cut % (len(body) + 1) for cut in cuts})
    upstream.next = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    # Sure to fit: the whole line, with its end, within the limit. Sure not to: the data alone
    # over it. Between, where the parser catches it depends on how the bytes were split.
    fits = all(len(e) + 8 <= SMALL_LIMIT for e in events)
    too_large = [len(e) > SMALL_LIMIT for e in events]
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    messages = [{"role": "user", "content": "x"}]
    try:
        got = list(client.chat.completions.create(model="m", messages=messages, stream=True))
    except openai.APIError as exc:
        got = exc
    if isinstance(got, openai.APIStatusError):  # before the first event: a 502 saying why
        assert not fits
        assert got.status_code == 502
        assert "larger than 4096 bytes" in got.body["message"]
    elif isinstance(got, openai.APIError):  # after it: an error event saying why
        assert not fits
        assert not too_large[0]
        assert "longer than 4096 bytes" in str(got)
    else:
        assert not any(too_large)
        text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
        assert text == "".join(d["content"] for d in deltas)
