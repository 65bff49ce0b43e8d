"""What the client reads as the model, and where a client's mistaken key in `model` lands.

The answer's `model` is the `x-plano-model` header's name (`provider/model_id`), on all
three client APIs, streamed or not, passed through or translated. A key sent as `model`
is masked in the error, the access log, the spans and the trace store.
"""

from __future__ import annotations

import json
import logging
import sqlite3

import anthropic
import openai
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams

from proxy.config.redact import MASK, mask_key_like
from proxy.telemetry.settings import WorkerSettings
from proxy.wire.model_name import ModelRenamer

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"
CLIENT_KEY = "sk-proj-Zq4yT1mV8pL2wX6nC9bR3kH7dF0sJ5aG"
USER = [{"role": "user", "content": "hello there"}]


def _config(ups, extra: str = ""):
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{name: m, type: model, port: 12000}}]
        model_providers:
          - {{model: openai/gpt-4o, base_url: '{ups["openai"][1]}/v1', access_key: $OK,
              default: true}}
          - {{model: anthropic/claude-sonnet-4-6, base_url: '{ups["anthropic"][1]}',
              access_key: $AK}}
          - {{model: openai/*, base_url: '{ups["openai"][1]}/v1', access_key: $OK}}
        model_aliases:
          fast: {{target: openai/gpt-4o}}
          careful: {{target: anthropic/claude-sonnet-4-6}}
        {extra}
        """,
        env={"OK": OPENAI_KEY, "AK": ANTHROPIC_KEY},
    )


@pytest.fixture(scope="module")
def proxy():
    with (
        openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as ups,
        ProxyThread(_config(ups)) as running,
    ):
        yield running


def oa(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)


def an(proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0)


# alias -> the name the answer must carry: passthrough (openai client, openai model) and
# translated (openai client, anthropic model), and the reverse for the anthropic client.
ALIASES = [("fast", "openai/gpt-4o"), ("careful", "anthropic/claude-sonnet-4-6")]


@pytest.mark.parametrize(("alias", "answered"), ALIASES)
def test_chat_completions(proxy, alias, answered):
    raw = oa(proxy).chat.completions.with_raw_response.create(model=alias, messages=USER)
    assert raw.headers["x-plano-model"] == answered
    assert raw.parse().model == answered
    with oa(proxy).chat.completions.with_streaming_response.create(
        model=alias, messages=USER, stream=True, stream_options={"include_usage": True}
    ) as streamed:
        assert streamed.headers["x-plano-model"] == answered
        assert {chunk.model for chunk in streamed.parse()} == {answered}


@pytest.mark.parametrize(("alias", "answered"), ALIASES)
def test_messages(proxy, alias, answered):
    raw = an(proxy).messages.with_raw_response.create(model=alias, max_tokens=20, messages=USER)
    assert raw.headers["x-plano-model"] == answered
    assert raw.parse().model == answered
    with an(proxy).messages.with_streaming_response.create(
        model=alias, max_tokens=20, messages=USER, stream=True
    ) as streamed:
        assert streamed.headers["x-plano-model"] == answered
        events = list(streamed.parse())
    assert [e.message.model for e in events if e.type == "message_start"] == [answered]


@pytest.mark.parametrize(("alias", "answered"), ALIASES)
def test_responses(proxy, alias, answered):
    raw = oa(proxy).responses.with_raw_response.create(model=alias, input="hello there")
    assert raw.headers["x-plano-model"] == answered
    assert raw.parse().model == answered
    with oa(proxy).responses.with_streaming_response.create(
        model=alias, input="hello there", stream=True
    ) as streamed:
        assert streamed.headers["x-plano-model"] == answered
        models = {e.response.model for e in streamed.parse() if hasattr(e, "response")}
    assert models == {answered}


def test_renaming_touches_only_the_model_key():
    rename = ModelRenamer("local/smollm2-135m")
    chunk = (
        '{"id":"c1","model":"smollm2-135m","choices":[{"delta":'
        '{"content":"say \\"model\\": \\"x\\", {\\"model\\":1}"}}]}'
    )
    renamed = json.loads(rename.text(chunk))
    assert renamed["model"] == "local/smollm2-135m"
    assert renamed["choices"] == json.loads(chunk)["choices"]
    start = '{"type":"message_start","message":{"id":"m","model" : "claude-x","content":[]}}'
    assert json.loads(rename.text(start))["message"]["model"] == "local/smollm2-135m"
    delta = '{"type":"content_block_delta","delta":{"text":"the \\"model\\" key"}}'
    assert rename.text(delta) == delta
    assert rename.body(chunk.encode()) == rename.text(chunk).encode()


# Text that looks like the key: quotes, backslashes, `"model":` itself, any unicode.
TRICKY = st.lists(st.sampled_from(['"', "\\", ",", "{", ":", " ", '"model"', "é", "\n"])).map(
    "".join
)


@given(
    model=st.text(),
    content=TRICKY,
    args=TRICKY,
    spaced=st.booleans(),
)
def test_renaming_any_answer_changes_its_model_only(model, content, args, spaced):
    chunk = {
        "id": content,
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"delta": {"content": content, "tool_calls": [{"arguments": args}]}}],
    }
    text = json.dumps(chunk) if spaced else orjson.dumps(chunk).decode()
    renamed = json.loads(ModelRenamer("local/x").text(text))
    assert renamed == {**chunk, "model": "local/x"}
    assert orjson.loads(ModelRenamer("a/b").body(text.encode())) == {**chunk, "model": "a/b"}


# --- a client's key sent as the model -------------------------------------------------------


def test_mask_key_like_is_bounded_and_masks_what_it_cuts():
    assert mask_key_like(CLIENT_KEY) == MASK
    assert mask_key_like("openai/gpt-4o") == "openai/gpt-4o"
    assert mask_key_like("fast\nFORGED 200 line") == "fast?FORGED 200 line"
    long = "gpt " * 62 + CLIENT_KEY  # the cut at 256 falls inside the key
    assert mask_key_like(long) == "gpt " * 62 + "..."
    assert len(mask_key_like("a" * 100_000)) < 300


def test_a_key_sent_as_the_model_is_masked_everywhere(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="plano")
    worker = WorkerSettings(store_path=str(tmp_path / "traces.db"), admin_port=0)
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as ups:
        with ProxyThread(_config(ups), telemetry=worker) as proxy:
            with pytest.raises(openai.BadRequestError) as unknown:
                oa(proxy).chat.completions.create(model=CLIENT_KEY, messages=USER)
            with pytest.raises(anthropic.BadRequestError) as unknown_anthropic:
                an(proxy).messages.create(model=CLIENT_KEY, max_tokens=5, messages=USER)
            # A wildcard provider takes any id: the key would be sent upstream, as asked,
            # but what Plano records and answers with is masked.
            raw = oa(proxy).chat.completions.with_raw_response.create(
                model=f"openai/{CLIENT_KEY}", messages=USER
            )
        assert raw.headers["x-plano-model"] == f"openai/{MASK}"
        assert raw.parse().model == f"openai/{MASK}"
        # The worker writes what is pending before it exits.
        with sqlite3.connect(tmp_path / "traces.db") as db:
            stored = db.execute("select count(*) from requests").fetchone()[0]
            dump = "\n".join(db.iterdump())
    assert unknown.value.body["message"] == f"Model '{MASK}' not found in configured providers"
    assert unknown_anthropic.value.body["error"]["message"] == (
        f"Model '{MASK}' not found in configured providers"
    )
    access = [r.getMessage() for r in caplog.records if r.name == "plano.access"]
    assert len(access) == 3
    assert f"model={MASK} " in access[0]
    assert f"model=openai/{MASK} " in access[2]
    assert stored == 3
    assert CLIENT_KEY not in caplog.text
    assert CLIENT_KEY not in dump
    assert CLIENT_KEY[3:20] not in dump
