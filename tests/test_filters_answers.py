"""Answers through filters: a gzip upstream under output filters, and a built-in's answer
transform (the anonymize flow) on streams and JSON answers, with a built-in double."""

from __future__ import annotations

import contextlib
import gzip
import json
import re

import orjson
import pytest
from aiohttp import web
from fakes import filter_server as fs
from fakes.server_thread import ServerThread
from filters_harness import ANTHROPIC_KEY, OPENAI_KEY, Gateway, filter_servers, filters_config
from proxy_harness import config_from_yaml, openai_and_anthropic_upstreams
from test_filters_http import APIS, ask

import proxy.filters.chain as chain
from proxy.filters.verdict import ATTR_CHUNKS, ATTR_DECISION, Decision, Verdict

# --- gzip -----------------------------------------------------------------------------

ANSWER = "The secret word is Paris."


def _chunk(text: str, finish: str | None = None) -> bytes:
    delta = {"content": text} if text else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [choice]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def gzip_upstream(request: web.Request) -> web.StreamResponse:
    """An OpenAI-wire provider that compresses its answers, JSON and SSE alike."""
    body = await request.json()
    if not body.get("stream"):
        answer = {
            "id": "c1",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }
        return web.Response(
            body=gzip.compress(orjson.dumps(answer)),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}
    )
    await response.prepare(request)
    stream = b"".join(
        [_chunk(word) for word in re.findall(r"\S+\s*", ANSWER)]
        + [_chunk("", "stop"), b"data: [DONE]\n\n"]
    )
    await response.write(gzip.compress(stream))
    return response


@pytest.fixture(scope="module")
def gzip_world():
    app = web.Application()
    app.router.add_post("/v1/chat/completions", gzip_upstream)
    with ServerThread(app) as upstream, filter_servers(("guard",)) as servers:
        config = config_from_yaml(
            f"""
version: v0.4.0
listeners:
  - {{name: llm, type: model, port: 12000, output_filters: [guard]}}
model_providers:
  - {{model: openai/gpt-4o, base_url: "{upstream.base_url}/v1", access_key: k, default: true}}
filters:
  - {{id: guard, type: http, url: "{servers["guard"].url}"}}
"""
        )
        with Gateway(config) as gateway:
            yield gateway, servers["guard"]


@pytest.mark.parametrize("stream", [False, True])
def test_output_filters_see_a_gzip_upstreams_answer_decompressed(gzip_world, stream):
    gateway, guard = gzip_world
    guard.reset(fs.replace(b"Paris", b"[REDACTED]"))
    assert ask(gateway, "openai_chat", stream) == "The secret word is [REDACTED]."
    assert all(b"\x1f\x8b" not in call.body for call in guard.calls)  # no gzip magic
    assert any(b"Paris" in call.body for call in guard.calls)
    (step,) = gateway.filter_steps()
    assert step.attributes[ATTR_DECISION] == "modify"


# --- a built-in double: the anonymize flow --------------------------------------------

EMAIL = "alice@example.com"
PLACEHOLDER = "<EMAIL 1>"  # has a space: a stream splits it across deltas


class Restorer:
    """Restores the placeholder in an answer, holding back what may be its start."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping, self.tail = mapping, ""

    def feed(self, text: str) -> str:
        text = self.tail + text
        for placeholder, value in self.mapping.items():
            text = text.replace(placeholder, value)
        keep = max(
            (n for p in self.mapping for n in range(1, len(p)) if text.endswith(p[:n])),
            default=0,
        )
        self.tail = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep] if keep else text

    def flush(self) -> str:
        out, self.tail = self.tail, ""
        return out


class AnonymizeDouble:
    kind = "pii"

    def __init__(self):
        self.apis: list[str] = []

    def check_request(self, body: dict, api: str, state: dict) -> Verdict:
        self.apis.append(api)
        raw = json.dumps(body)
        if EMAIL not in raw:
            return Verdict(Decision.PASS)
        state["mapping"] = {PLACEHOLDER: EMAIL}
        return Verdict(Decision.MODIFY, raw.replace(EMAIL, PLACEHOLDER).encode())

    def answer(self, state: dict):
        return Restorer(state["mapping"]) if "mapping" in state else None


@contextlib.contextmanager
def builtin_gateway(double, filters: str, listener: str):
    """A gateway whose built-in filters are all `double` (the filters are built when the
    gateway starts: only then is the factory replaced); yields (gateway, upstreams)."""
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as upstreams:
        gateway = Gateway(filters_config(upstreams, filters, listener))
        saved = chain.builtin_factory
        chain.builtin_factory = lambda kind, options: double
        try:
            gateway.__enter__()
        finally:
            chain.builtin_factory = saved
        try:
            yield gateway, upstreams
        finally:
            gateway.__exit__(None, None, None)


@pytest.fixture(scope="module")
def anonymizing():
    double = AnonymizeDouble()
    filters = "- {id: pii, type: builtin, kind: pii, action: anonymize}\n"
    with builtin_gateway(double, filters, "input_filters: [pii]") as (gateway, upstreams):
        yield gateway, upstreams, double


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", APIS)
def test_anonymized_prompt_and_restored_answer(anonymizing, api, stream):
    gateway, upstreams, double = anonymizing
    for state, _ in upstreams.values():
        state.clear()
    text = f"mail {EMAIL} now"
    assert ask(gateway, api, stream, text) == f"echo: {text}"
    provider = upstreams["anthropic" if api == "anthropic_messages" else "openai"][0]
    sent = json.dumps(provider.last.body)
    assert EMAIL not in sent
    assert PLACEHOLDER in sent
    assert double.apis[-1] == api
    (step,) = gateway.filter_steps()
    assert step.attributes[ATTR_DECISION] == "modify"
    # What the telemetry keeps of the request is what the model got: no address in it.
    assert gateway.last.request_body is None or EMAIL.encode() not in gateway.last.request_body


def test_a_request_without_anything_to_hide_is_passed_through(anonymizing):
    gateway, _upstreams, _ = anonymizing
    assert ask(gateway, "openai_chat", True, "nothing here") == "echo: nothing here"
    assert gateway.last.passthrough is True
    (step,) = gateway.filter_steps()
    assert step.attributes[ATTR_DECISION] == "pass"
    assert ATTR_CHUNKS not in step.attributes


# --- the real built-ins, through the chain ----------------------------------------------


@pytest.fixture(scope="module")
def real_builtins():
    filters = (
        "- {id: pii, type: builtin, kind: pii, action: anonymize}\n"
        "- {id: policy, type: builtin, kind: content_policy, rules: [{keywords: [Paris]}],"
        " mode: enforce}\n"
        "- {id: watch, type: builtin, kind: content_policy, rules: [{keywords: [now]}],"
        " mode: observe}\n"
    )
    listener = "input_filters: [pii]\noutput_filters: [policy, watch]"
    with (
        openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as upstreams,
        Gateway(filters_config(upstreams, filters, listener)) as gateway,
    ):
        yield gateway, upstreams


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", APIS)
def test_pii_round_trip_and_output_policy_with_the_real_built_ins(real_builtins, api, stream):
    gateway, upstreams = real_builtins
    for state, _ in upstreams.values():
        state.clear()
    text = f"mail {EMAIL} in Paris now"
    # The model sees a placeholder; the client gets the address back, and the output
    # policy's [BLOCKED] for Paris; the observed policy changes nothing.
    assert ask(gateway, api, stream, text) == f"echo: mail {EMAIL} in [BLOCKED] now"
    provider = upstreams["anthropic" if api == "anthropic_messages" else "openai"][0]
    sent = json.dumps(provider.last.body)
    assert EMAIL not in sent
    assert "<EMAIL_1>" in sent
    steps = {(s.name, s.attributes["filter.direction"]): s for s in gateway.filter_steps()}
    assert steps["pii", "input"].attributes[ATTR_DECISION] == "modify"
    assert steps["policy", "output"].attributes[ATTR_DECISION] == "modify"
    assert steps["policy", "output"].attributes[ATTR_CHUNKS] >= 1
    watch = steps["watch", "output"].attributes
    assert watch[ATTR_DECISION] == "modify"  # what it would have done
    assert watch["filter.applied"] is False
