"""Hostile http filters and clients against the filter chain: what a filter answers must
never redirect the request elsewhere, and a client's key to Plano never reaches a filter."""

from __future__ import annotations

import hashlib
import logging
import threading
import time

import openai
import pytest
from aiohttp import web
from fakes.server_thread import ServerThread
from filters_harness import ANTHROPIC_KEY, OPENAI_KEY, Gateway, filters_config
from hypothesis import given
from hypothesis import strategies as st
from proxy_harness import openai_and_anthropic_upstreams

from proxy.filters.builtin import build_builtin
from proxy.filters.verdict import Decision

HI = [{"role": "user", "content": "hi"}]
PLANO_KEY = "plano-hostile-0123456789abcdef-secret"


class HostileFilter:
    """An http filter that answers what a test scripts, and a second place a redirect may
    point to; both record what they were sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.answer: web.Response | None = None
        self.url = ""

    def app(self) -> web.Application:
        async def elsewhere(request: web.Request) -> web.Response:
            self.calls.append(("elsewhere", dict(request.headers), await request.read()))
            rewritten = b'{"model": "openai/gpt-4o", "messages": []}'
            return web.Response(body=rewritten, content_type="application/json")

        async def filter_call(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.calls.append(("filter", dict(request.headers), body))
            if self.answer is not None:
                return self.answer
            return web.Response(body=body, content_type="application/json")

        app = web.Application()
        app.router.add_post("/elsewhere/{tail:.*}", elsewhere)
        app.router.add_post("/{tail:.*}", filter_call)
        return app


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


@pytest.fixture(scope="module")
def hostile():
    server = HostileFilter()
    with ServerThread(server.app()) as thread:
        server.url = thread.base_url
        yield server


@pytest.fixture
def h(hostile, upstreams):
    hostile.calls.clear()
    hostile.answer = None
    for state, _ in upstreams.values():
        state.clear()
    return hostile


def guard(server: HostileFilter, settings: str = "") -> str:
    return f"- {{id: guard, type: http, url: '{server.url}'{settings}}}\n"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_filters_redirect_is_an_error_never_followed(h, upstreams, status):
    """docs/filters.md: a redirect is an unusable answer. Followed, a 307/308 would resend
    the request, its Authorization header included, wherever the filter pointed."""
    config = filters_config(upstreams, guard(h), "input_filters: [guard]")
    h.answer = web.Response(status=status, headers={"Location": h.url + "/elsewhere/x"})
    with Gateway(config) as gateway:
        client = gateway.openai(default_headers={"Authorization": "Bearer sk-client-own-9f8e7d"})
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert caught.value.status_code == 502
    assert f"filter 'guard' failed (HTTP {status})" in caught.value.message
    assert [who for who, _, _ in h.calls] == ["filter"]  # nothing was sent elsewhere
    assert upstreams["openai"][0].requests == []  # fail_closed: no model was called


def test_a_client_key_to_plano_never_reaches_a_filter(h, upstreams):
    """docs/auth.md: the header holding a Plano key goes nowhere else; filters get the
    client's other headers (as upstream forwards them)."""
    digest = hashlib.sha256(PLANO_KEY.encode()).hexdigest()
    config = filters_config(
        upstreams,
        guard(h),
        f"""\
        input_filters: [guard]
        output_filters: [guard]
        auth: {{keys: [{{id: team-blue, key: "sha256:{digest}"}}]}}
        """,
    )
    with Gateway(config) as gateway:
        client = openai.OpenAI(
            base_url=gateway.url + "/v1",
            api_key=PLANO_KEY,
            default_headers={"x-team": "blue"},
            max_retries=0,
        )
        answer = client.chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert answer.choices[0].message.content
    assert len(h.calls) == 2  # the input call and the answer's
    for _, headers, _ in h.calls:
        assert headers["x-team"] == "blue"  # the client's other headers still go
        assert "Authorization" not in headers
        for value in headers.values():
            assert PLANO_KEY not in value


# --- built-ins on hostile bodies -------------------------------------------------------

_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
# A content part or block of any shape: its `type` may be any JSON value, a list included.
_part = st.fixed_dictionaries(
    {"type": _json | st.sampled_from(["text", "input_text", "tool_result"])},
    optional={"text": _json | st.just("mail a@b.example"), "content": _json},
)
_content = st.text(max_size=8) | st.lists(_part, max_size=3) | _json
_message = st.fixed_dictionaries(
    {"role": _json | st.sampled_from(["user", "system"]), "content": _content}
)
_bodies = st.fixed_dictionaries(
    {"model": _json, "messages": st.lists(_message, max_size=3) | _json},
    optional={"system": _content, "instructions": _json, "input": _content},
)
BUILTINS = [
    *(build_builtin("pii", {"action": action}) for action in ("redact", "anonymize", "block")),
    build_builtin("prompt_injection", {}),
    build_builtin("content_policy", {"rules": [{"pattern": "forbidden"}]}),
]
APIS = ("openai_chat", "anthropic_messages", "openai_responses", "agent")


@given(body=_bodies, api=st.sampled_from(APIS))
def test_builtins_give_a_verdict_on_any_json_body(body, api):
    """A built-in that raises fails the request with a 502 and a traceback in the log; a
    body the API cannot use must reach the edge's own 400 instead."""
    for builtin in BUILTINS:
        verdict = builtin.check_request(body, api, {})
        assert verdict.decision in (Decision.PASS, Decision.MODIFY, Decision.BLOCK)


@pytest.mark.parametrize("kind", ["pii", "prompt_injection", "content_policy"])
def test_an_odd_content_part_type_through_a_builtin_is_the_edges_400(upstreams, kind, caplog):
    options = ", rules: [{pattern: forbidden}]" if kind == "content_policy" else ""
    config = filters_config(
        upstreams, f"- {{id: g, type: builtin, kind: {kind}{options}}}\n", "input_filters: [g]"
    )
    messages = [{"role": "user", "content": [{"type": ["text"], "text": "hi"}]}]
    with (
        caplog.at_level(logging.INFO),
        Gateway(config) as gateway,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        gateway.openai().chat.completions.create(model="openai/gpt-4o", messages=messages)
    assert "filter" not in caught.value.message  # the edge's own 400, not the filter's
    assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"


def test_a_huge_prompt_through_the_injection_detector_does_not_stall_the_listener(upstreams):
    """Scoring takes the detector about 5 s a MB: on the event loop, one large prompt
    held every other request of the listener, and ran past the filter's timeout. It runs
    in a worker thread now, stopped at the timeout, while other requests are served."""
    config = filters_config(
        upstreams,
        "- {id: inj, type: builtin, kind: prompt_injection, timeout: 2s}\n",
        "input_filters: [inj]",
    )
    finished: list[str] = []
    outcome: dict[str, object] = {}

    def huge(gateway: Gateway) -> None:
        prompt = "a. " * (1_400_000)  # 4 MiB
        try:
            gateway.openai(timeout=120).chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": prompt}]
            )
        except openai.APIStatusError as exc:
            outcome["huge"] = exc
        finished.append("huge")

    with Gateway(config) as gateway:
        thread = threading.Thread(target=huge, args=(gateway,))
        thread.start()
        gateway.wait_for(0)
        time.sleep(0.5)  # the huge request is being scored
        answer = gateway.openai(timeout=120).chat.completions.create(
            model="openai/gpt-4o", messages=HI
        )
        finished.append("small")
        thread.join(120)
    assert answer.choices[0].message.content
    assert finished == ["small", "huge"]  # served while the huge one was still scored
    error = outcome["huge"]
    assert isinstance(error, openai.APIStatusError)
    assert error.status_code == 504
    assert "filter 'inj' failed (timeout)" in error.message
