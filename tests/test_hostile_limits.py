"""Hostile upstreams and clients against `ratelimits`: an answer must be debited whatever
the upstream reports, so a budget cannot be outrun by a provider that omits usage."""

from __future__ import annotations

import textwrap

import openai
import orjson
import pytest
from aiohttp import web
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml

ANSWER_WORDS = 400  # one o200k token each: " word"
TEAM = {"x-arch-ratelimit-selector": "x-team", "x-team": "red"}


def no_usage_upstream() -> web.Application:
    """An OpenAI-compatible server that ignores `stream_options.include_usage` (as some
    self-hosted servers do): its streams never carry usage."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
        if not body.get("stream"):
            message = {"role": "assistant", "content": " word" * ANSWER_WORDS}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response({**base, "object": "chat.completion", "choices": [choice]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(ANSWER_WORDS):
            delta = {"role": "assistant", "content": " word"} if i == 0 else {"content": " word"}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(b"data: " + orjson.dumps(end) + b"\n\ndata: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


@pytest.fixture(scope="module")
def gateway():
    with ServerThread(no_usage_upstream()) as upstream:
        text = textwrap.dedent(
            f"""\
            version: v0.4.0
            listeners: [{{name: m, type: model, port: 12000, max_retries: 0}}]
            model_providers:
              - {{model: openai/gpt-4o, base_url: "{upstream.base_url}/v1", access_key: $OA,
                 default: true}}
            ratelimits:
              - model: openai/gpt-4o
                selector: {{key: x-team}}
                limit: {{tokens: 500, unit: hour}}
            """
        )
        with ProxyThread(config_from_yaml(text, env={"OA": "sk-upstream-000000"})) as proxy:
            yield proxy


def ask(proxy: ProxyThread, team: str, stream: bool, words: int = 3):
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0)
    headers = {**TEAM, "x-team": team}
    messages = [{"role": "user", "content": " ".join(["hello"] * words)}]
    if not stream:
        return client.chat.completions.create(
            model="openai/gpt-4o", messages=messages, extra_headers=headers
        )
    chunks = client.chat.completions.create(
        model="openai/gpt-4o", messages=messages, extra_headers=headers, stream=True
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_answer_without_usage_is_debited_by_its_text(gateway, stream):
    """docs/ratelimits.md: without usage, the answer's text is counted. 400 tokens of
    answer leave less than the 100 the next request needs."""
    team = "stream" if stream else "json"
    ask(gateway, team, stream)
    with pytest.raises(openai.RateLimitError):
        ask(gateway, team, stream, words=100)
