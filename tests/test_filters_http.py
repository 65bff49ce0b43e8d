"""http filters end to end: the official SDKs -> the real proxy -> stand-in filter servers
(upstream Plano's protocol) and stand-in providers, all on loopback."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest
from fakes import filter_server as fs
from fakes.providers import giant_answer
from filters_harness import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    Gateway,
    filter_servers,
    filters_config,
)
from proxy_harness import openai_and_anthropic_upstreams

from proxy.filters.verdict import (
    ATTR_APPLIED,
    ATTR_CHUNKS,
    ATTR_CHUNKS_MODIFIED,
    ATTR_DECISION,
    ATTR_DIFF,
    ATTR_DIRECTION,
    ATTR_ERROR,
    ATTR_MESSAGE,
    ATTR_MODE,
)

USER = "Tell me about Paris"
BLOCK_BODY = b'{"detail": {"error": "content_blocked", "reason": "no secrets please"}}'


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


@pytest.fixture(scope="module")
def servers():
    with filter_servers() as found:
        yield found


@pytest.fixture
def f(servers, upstreams):
    """The filter servers, reset; the providers' scripts cleared."""
    for server in servers.values():
        server.reset()
    servers["guard"].log.clear()
    for state, _ in upstreams.values():
        state.clear()
    return servers


def http(servers, *names: str, **settings: str) -> str:
    lines = []
    for name in names:
        extra = "".join(f", {k}: {v}" for k, v in settings.items())
        lines.append(f"- {{id: {name}, type: http, url: '{servers[name].url}'{extra}}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def input_gateway(upstreams, servers):
    config = filters_config(upstreams, http(servers, "guard"), "input_filters: [guard]")
    with Gateway(config) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def output_gateway(upstreams, servers):
    config = filters_config(upstreams, http(servers, "guard"), "output_filters: [guard]")
    with Gateway(config) as gateway:
        yield gateway


# --- the three client APIs, as each SDK calls them --------------------------------------


def ask(gateway: Gateway, api: str, stream: bool, text: str = USER) -> str:
    """The answer's text, as the client got it; the request's Exchange is recorded."""
    seen = len(gateway.exchanges)
    try:
        return _ask(gateway, api, stream, text)
    finally:
        gateway.wait_for(seen + 1)


def _ask(gateway: Gateway, api: str, stream: bool, text: str) -> str:
    if api == "openai_chat":
        client = gateway.openai()
        messages = [{"role": "user", "content": text}]
        if stream:
            chunks = client.chat.completions.create(
                model="openai/gpt-4o", messages=messages, stream=True
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        done = client.chat.completions.create(model="openai/gpt-4o", messages=messages)
        return done.choices[0].message.content
    if api == "anthropic_messages":
        client = gateway.anthropic()
        kw = {
            "model": "anthropic/claude-sonnet-4-6",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": text}],
        }
        if stream:
            with client.messages.stream(**kw) as events:
                return "".join(events.text_stream)
        return client.messages.create(**kw).content[0].text
    client = gateway.openai()
    if stream:
        out = []
        for event in client.responses.create(model="openai/gpt-4o", input=text, stream=True):
            if event.type == "response.output_text.delta":
                out.append(event.delta)
            elif event.type == "response.failed":  # the SDK yields it: the test raises it
                raise StreamFailed(event.response.error.message)
        return "".join(out)
    return client.responses.create(model="openai/gpt-4o", input=text).output_text


class StreamFailed(Exception):
    """A Responses stream that ended with response.failed."""


APIS = ["openai_chat", "anthropic_messages", "openai_responses"]
PATHS = {
    "openai_chat": "/v1/chat/completions",
    "anthropic_messages": "/v1/messages",
    "openai_responses": "/v1/responses",
}
BLOCKED = {
    "openai_chat": openai.BadRequestError,
    "anthropic_messages": anthropic.BadRequestError,
    "openai_responses": openai.BadRequestError,
}


# --- input ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", APIS)
def test_input_pass_sends_the_raw_body_with_upstreams_headers(f, input_gateway, api, stream):
    assert ask(input_gateway, api, stream) == f"echo: {USER}"
    (call,) = f["guard"].calls
    assert call.path == PATHS[api]
    sent = json.loads(call.body)
    assert json.dumps(sent).count(USER) == 1  # the client's own body, in its own API
    assert call.headers["x-arch-upstream"] == "guard"
    assert call.headers["content-type"] == "application/json"
    trace_id = input_gateway.last.trace.trace_id
    (step,) = input_gateway.filter_steps()
    assert call.headers["traceparent"] == f"00-{trace_id}-{step.span_id}-01"
    # The request's headers travel with it (upstream forwards them), the key included.
    auth = call.headers.get("authorization") or call.headers.get("x-api-key")
    assert "client-key" in auth
    assert step.attributes[ATTR_DECISION] == "pass"
    assert step.attributes[ATTR_DIRECTION] == "input"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", APIS)
def test_input_mutation_is_what_the_model_gets(f, upstreams, input_gateway, api, stream):
    f["guard"].behaviour = fs.replace(b"Paris", b"Lyon")
    assert ask(input_gateway, api, stream) == "echo: Tell me about Lyon"
    (step,) = input_gateway.filter_steps()
    assert step.attributes[ATTR_DECISION] == "modify"
    assert step.attributes[ATTR_APPLIED] is True
    # The diff names what changed: a message by its index, or the Responses input string.
    expected = "~input (" if api == "openai_responses" else "messages[0] ("
    assert step.attributes[ATTR_DIFF].startswith(expected)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", APIS)
def test_input_block_reaches_the_client_in_its_api_shape(f, upstreams, input_gateway, api, stream):
    f["guard"].behaviour = fs.block_if(b"Paris", 403, BLOCK_BODY)
    error = {
        "openai_chat": openai.PermissionDeniedError,
        "anthropic_messages": anthropic.PermissionDeniedError,
        "openai_responses": openai.PermissionDeniedError,
    }[api]
    with pytest.raises(error) as raised:
        ask(input_gateway, api, stream)
    assert raised.value.status_code == 403
    message = str(raised.value)
    assert "filter 'guard' blocked the request: " in message
    assert "no secrets please" in message  # the filter's own body
    assert all(state.requests == [] for state, _ in upstreams.values())
    (step,) = input_gateway.filter_steps()
    assert step.attributes[ATTR_DECISION] == "block"
    assert "content_blocked" in step.attributes[ATTR_MESSAGE]
    assert input_gateway.last.status == 403


# --- output -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", APIS)
def test_output_pass_and_mutate(f, upstreams, output_gateway, api, stream):
    assert ask(output_gateway, api, stream) == f"echo: {USER}"
    calls = len(f["guard"].calls)
    assert calls >= 1
    (step,) = output_gateway.filter_steps()
    assert step.attributes[ATTR_CHUNKS] == calls  # one step for the whole answer
    assert step.attributes[ATTR_DECISION] == "pass"
    assert f["guard"].calls[0].path == PATHS[api]
    expected = "text/event-stream" if stream else "application/json"
    assert f["guard"].calls[0].headers["content-type"] == expected

    f["guard"].reset(fs.replace(b"Paris", b"[CITY]"))
    assert ask(output_gateway, api, stream) == "echo: Tell me about [CITY]"
    (step,) = output_gateway.filter_steps()
    assert step.attributes[ATTR_DECISION] == "modify"
    assert step.attributes[ATTR_CHUNKS_MODIFIED] >= 1
    # The provider got the request as sent: output filters do not touch it.
    assert USER in json.dumps(upstreams[_provider(api)][0].last.body)


def _provider(api: str) -> str:
    return "anthropic" if api == "anthropic_messages" else "openai"


@pytest.mark.parametrize("api", APIS)
def test_output_block_of_a_json_answer_is_an_error_response(f, output_gateway, api):
    f["guard"].behaviour = fs.block_if(b"Paris", 400, b"answer withheld")
    with pytest.raises(BLOCKED[api]) as raised:
        ask(output_gateway, api, False)
    assert "filter 'guard' blocked the answer: answer withheld" in str(raised.value)
    # The model's call that answered stays on the record.
    assert [a.outcome for a in output_gateway.last.attempts] == ["ok"]
    assert output_gateway.last.status == 400


@pytest.mark.parametrize("api", APIS)
def test_output_block_ends_a_stream_with_an_error_event(f, output_gateway, api):
    f["guard"].behaviour = fs.block_if(b"Paris", 400, b"answer withheld")
    with pytest.raises((openai.APIError, anthropic.APIError, StreamFailed)) as raised:
        ask(output_gateway, api, True)
    assert "filter 'guard' blocked the answer: answer withheld" in str(raised.value)
    assert output_gateway.last.status == 200  # committed: the error is an event
    assert "blocked the answer" in output_gateway.last.error


# --- failures, under both on_error values -----------------------------------------------

FAILURES = {
    "500": (lambda: fs.status(500, b"guard crashed"), "HTTP 500", 502),
    "hang": (lambda: fs.hang(5), "timeout", 504),
    "refused": (None, "connect error", 502),
}


@pytest.fixture(scope="module")
def closed_and_open(upstreams, servers):
    """Input filters: guard fails closed (the default); second fails open; 1.5 s each: well
    under the hanging stand-in's 5 s, and room for a loaded machine to answer a 500 (at 300 ms
    a full suite beside other work saw the 500 arrive after the deadline)."""
    filters = "".join(
        [
            f"- {{id: guard, type: http, url: '{servers['guard'].url}', timeout: 1500ms}}\n",
            f"- {{id: second, type: http, url: '{servers['second'].url}', timeout: 1500ms,"
            " on_error: fail_open}\n",
            "- {id: dead, type: http, url: 'http://127.0.0.1:9', on_error: fail_open}\n",
            "- {id: dead_closed, type: http, url: 'http://127.0.0.1:9'}\n",
            f"- {{id: big, type: http, url: '{servers['third'].url}', timeout: 20s}}\n",
        ]
    )
    configs = {
        "closed": filters_config(upstreams, filters, "input_filters: [guard]"),
        "open": filters_config(upstreams, filters, "input_filters: [second]"),
        "refused-open": filters_config(upstreams, filters, "input_filters: [dead]"),
        "refused-closed": filters_config(upstreams, filters, "input_filters: [dead_closed]"),
        "patient": filters_config(upstreams, filters, "input_filters: [big]"),
    }
    gateways = {name: Gateway(config) for name, config in configs.items()}
    for gateway in gateways.values():
        gateway.__enter__()
    yield gateways
    for gateway in gateways.values():
        gateway.__exit__(None, None, None)


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failing_filter_fails_closed_with_a_named_error(f, closed_and_open, failure):
    make, outcome, status = FAILURES[failure]
    if make is None:
        gateway = closed_and_open["refused-closed"]
    else:
        gateway = closed_and_open["closed"]
        f["guard"].behaviour = make()
    with pytest.raises(openai.APIStatusError) as raised:
        ask(gateway, "openai_chat", False)
    assert raised.value.status_code == status
    name = "dead_closed" if make is None else "guard"
    assert f"filter '{name}' failed ({outcome})" in raised.value.message
    (step,) = gateway.filter_steps()
    assert step.outcome == outcome
    assert step.attributes[ATTR_DECISION] == "error"
    assert step.attributes[ATTR_APPLIED] is True
    assert step.attributes[ATTR_ERROR]


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failing_filter_fails_open_and_the_request_goes_on(f, closed_and_open, failure):
    make, outcome, _ = FAILURES[failure]
    if make is None:
        gateway = closed_and_open["refused-open"]
    else:
        gateway = closed_and_open["open"]
        f["second"].behaviour = make()
    assert ask(gateway, "anthropic_messages", True) == f"echo: {USER}"
    (step,) = gateway.filter_steps()
    assert step.outcome == outcome
    assert step.attributes[ATTR_DECISION] == "error"
    assert step.attributes[ATTR_APPLIED] is False


def test_an_output_filter_error_passes_chunks_by_default_and_ends_the_stream_closed(
    f, upstreams, servers
):
    filters = http(servers, "guard") + (
        f"- {{id: strict, type: http, url: '{servers['second'].url}', on_error: fail_closed}}\n"
    )
    f["guard"].behaviour = fs.status(500)
    f["second"].behaviour = fs.status(500)
    with Gateway(filters_config(upstreams, filters, "output_filters: [guard]")) as gateway:
        assert ask(gateway, "openai_chat", True) == f"echo: {USER}"
        (step,) = gateway.filter_steps()
        assert step.attributes[ATTR_DECISION] == "error"
        assert step.attributes[ATTR_CHUNKS] == len(f["guard"].calls)
    with Gateway(filters_config(upstreams, filters, "output_filters: [strict]")) as gateway:
        with pytest.raises(openai.APIError) as raised:
            ask(gateway, "openai_chat", True)
        assert "filter 'strict' failed (HTTP 500)" in str(raised.value)
        with pytest.raises(openai.InternalServerError) as raised:
            ask(gateway, "openai_chat", False)
        assert raised.value.status_code == 502


# --- observe mode -----------------------------------------------------------------------


def test_observe_mode_records_the_would_be_decision_and_changes_nothing(f, upstreams, servers):
    filters = http(servers, "guard", mode="observe") + http(servers, "second", mode="observe")
    listener = "input_filters: [guard, second]\noutput_filters: [guard]"
    f["guard"].behaviour = fs.block_if(b"Paris", 400, BLOCK_BODY)
    f["second"].behaviour = fs.replace(b"Paris", b"Lyon")
    with Gateway(filters_config(upstreams, filters, listener)) as gateway:
        assert ask(gateway, "openai_chat", False) == f"echo: {USER}"
        assert upstreams["openai"][0].last.body["messages"][0]["content"] == USER
        guard_in, second_in, guard_out = gateway.filter_steps()
        assert guard_in.attributes[ATTR_MODE] == "observe"
        assert guard_in.attributes[ATTR_DECISION] == "block"
        assert guard_in.attributes[ATTR_APPLIED] is False
        assert "no secrets please" in guard_in.attributes[ATTR_MESSAGE]
        # The second filter saw the body the first would have blocked, unchanged.
        assert b"Paris" in f["second"].calls[0].body
        assert second_in.attributes[ATTR_DECISION] == "modify"
        assert second_in.attributes[ATTR_DIFF].startswith("messages[0]")
        assert guard_out.attributes[ATTR_DIRECTION] == "output"
        assert guard_out.attributes[ATTR_DECISION] == "block"


# --- a chain ----------------------------------------------------------------------------


def test_a_chain_of_three_runs_in_order_each_seeing_the_last_ones_body(f, upstreams, servers):
    filters = http(servers, "guard", "second", "third")
    f["guard"].behaviour = fs.replace(b"Paris", b"Lyon")
    f["second"].behaviour = fs.replace(b"Lyon", b"Nice")
    with Gateway(filters_config(upstreams, filters, "input_filters: [third, guard, second]")) as g:
        assert ask(g, "openai_chat", False) == "echo: Tell me about Nice"
        assert f["guard"].log == ["third", "guard", "second"]
        assert b"Paris" in f["guard"].calls[0].body
        assert b"Lyon" in f["second"].calls[0].body
        assert [s.name for s in g.filter_steps()] == ["third", "guard", "second"]


# --- hostile filters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        (lambda: fs.raw(b"<html>not json</html>", "text/html"), "malformed reply"),
        (lambda: fs.raw(b"[1, 2, 3]"), "malformed reply"),
        (lambda: fs.drip(0.05), "timeout"),
        (lambda: fs.status(302, b""), "HTTP 302"),
    ],
)
def test_hostile_replies_are_clear_errors_never_500(f, closed_and_open, behaviour, outcome):
    gateway = closed_and_open["closed"]
    f["guard"].behaviour = behaviour()
    with pytest.raises(openai.APIStatusError) as raised:
        ask(gateway, "openai_chat", False)
    assert raised.value.status_code in (502, 504)
    assert "filter 'guard' failed" in raised.value.message
    assert gateway.filter_steps()[0].outcome == outcome


def test_a_reply_past_the_bound_is_an_error_not_a_crash(f, closed_and_open):
    gateway = closed_and_open["patient"]
    f["third"].behaviour = fs.raw(b"x" * (33 * 1024 * 1024))
    with pytest.raises(openai.APIStatusError) as raised:
        ask(gateway, "openai_chat", False)
    assert raised.value.status_code == 502
    assert "filter 'big' failed (malformed reply): answered more than" in raised.value.message


def test_secrets_never_reach_the_error_or_the_step(f, closed_and_open):
    gateway = closed_and_open["closed"]

    async def echo_headers(request, body):
        from aiohttp import web

        return web.Response(status=400, text=f"refused for {request.headers['Authorization']}")

    f["guard"].behaviour = echo_headers
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key="sk-client-secret-1234567890", max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert "sk-client-secret-1234567890" not in str(raised.value.body)
    (step,) = gateway.filter_steps()
    assert "sk-client-secret-1234567890" not in json.dumps(step.attributes)


def test_a_filter_reply_may_be_gzipped(f, closed_and_open):
    gateway = closed_and_open["closed"]

    async def gzipped(request, body):
        from aiohttp import web

        response = web.Response(
            body=body.replace(b"Paris", b"Rome"), content_type="application/json"
        )
        response.enable_compression(web.ContentCoding.gzip)
        return response

    f["guard"].behaviour = gzipped
    assert ask(gateway, "openai_chat", False) == "echo: Tell me about Rome"


def test_an_observed_filter_that_fails_never_fails_the_request(f, upstreams, servers):
    filters = http(servers, "guard", mode="observe", on_error="fail_closed")
    f["guard"].behaviour = fs.status(500)
    with Gateway(filters_config(upstreams, filters, "input_filters: [guard]")) as gateway:
        assert ask(gateway, "openai_chat", False) == f"echo: {USER}"
        (step,) = gateway.filter_steps()
        assert step.attributes[ATTR_DECISION] == "error"
        assert step.attributes[ATTR_APPLIED] is False
        assert step.outcome == "HTTP 500"


def test_a_large_passed_through_answer_is_filtered_piece_by_piece(f, upstreams, output_gateway):
    upstreams["openai"][0].push(giant_answer(3 * 1024 * 1024, content_length=True))
    f["guard"].behaviour = fs.replace(b"a" * 1024, b"b" * 1024)  # the filler is all "a"
    client = output_gateway.openai()
    done = client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "big"}]
    )
    text = done.choices[0].message.content
    assert len(text) == 3 * 1024 * 1024
    assert text.count("b") > len(text) // 2  # the pieces went through the filter
    output_gateway.wait_for(1)
    (step,) = output_gateway.filter_steps()
    assert step.attributes[ATTR_CHUNKS] == len(f["guard"].calls) > 1


def test_a_gzipped_request_reaches_the_filter_decompressed_without_its_coding(f, input_gateway):
    import gzip

    import httpx

    body = json.dumps({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": USER}]})
    reply = httpx.post(
        input_gateway.url + "/v1/chat/completions",
        content=gzip.compress(body.encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert reply.status_code == 200, reply.text
    (call,) = f["guard"].calls
    assert "content-encoding" not in call.headers  # the body it got is not compressed
    assert json.loads(call.body)["messages"][0]["content"] == USER
