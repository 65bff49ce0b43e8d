"""Preference routing through the real gateway: official SDKs and raw HTTP in front,
stand-in providers behind, the embedded router deciding."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import anthropic
import openai
import pytest
from fakes.providers import status
from proxy_harness import ProxyThread, config_from_yaml, openai_and_anthropic_upstreams

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"
CODE = "Write a Python function that reverses a linked list, with unit tests."
REASONING = "Prove step by step that there are infinitely many prime numbers."
SMALL_TALK = "Hey, good morning! How are you doing today?"


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


@pytest.fixture
def fakes(upstreams):
    for state, _ in upstreams.values():
        state.clear()
    return {name: state for name, (state, _) in upstreams.items()}


def routing_config(upstreams, router: str = "{backend: embedded}", extra: str = ""):
    oa_url, an_url = upstreams["openai"][1], upstreams["anthropic"][1]
    return config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{name: m, type: model, port: 12000, max_retries: 0}}]
        model_providers:
          - model: openai/gpt-4o-mini
            base_url: {oa_url}/v1
            access_key: $OPENAI_KEY
            default: true
          - model: openai/o3
            base_url: {oa_url}/v1
            access_key: $OPENAI_KEY
          - model: anthropic/claude-sonnet-4-6
            base_url: {an_url}
            access_key: $ANTHROPIC_KEY
        routing_preferences:
          - name: code_generation
            description: writing new code, functions, classes, scripts and unit tests, and
              fixing bugs in existing code
            models: [anthropic/claude-sonnet-4-6, openai/gpt-4o-mini]
          - name: complex_reasoning
            description: multi-step reasoning, math proofs, logic puzzles and careful analysis
              of hard problems
            models: [openai/o3, anthropic/claude-sonnet-4-6]
        routing:
          router: {router}
        {extra}
        """,
        env={"OPENAI_KEY": OPENAI_KEY, "ANTHROPIC_KEY": ANTHROPIC_KEY},
    )


@pytest.fixture(scope="module")
def proxy(upstreams):
    with ProxyThread(routing_config(upstreams)) as running:
        yield running


def oa_client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="client-key", max_retries=0)


def an_client(proxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="client-key", max_retries=0)


def ask(proxy, prompt: str, model: str = "none", **kw):
    raw = oa_client(proxy).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], **kw
    )
    return raw.headers, raw.parse()


def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


# --- the gateway routes -----------------------------------------------------------------


def test_code_goes_to_the_coding_model(proxy, fakes):
    headers, reply = ask(proxy, CODE)
    assert headers["x-plano-route"] == "code_generation"
    assert headers["x-plano-model"] == "anthropic/claude-sonnet-4-6"
    assert fakes["anthropic"].last.body["model"] == "claude-sonnet-4-6"
    assert reply.choices[0].message.content == f"echo: {CODE}"


def test_reasoning_goes_to_the_reasoning_model(proxy, fakes):
    message = an_client(proxy).messages.with_raw_response.create(
        model="gpt-4o-mini",  # the default model does not pin: the router may choose
        max_tokens=50,
        messages=[{"role": "user", "content": REASONING}],
    )
    assert message.headers["x-plano-route"] == "complex_reasoning"
    assert fakes["openai"].last.body["model"] == "o3"
    assert message.parse().content[0].text == f"echo: {REASONING}"


def test_small_talk_stays_on_the_default(proxy, fakes):
    headers, _ = ask(proxy, SMALL_TALK)
    assert headers["x-plano-route"] == ""
    assert headers["x-plano-model"] == "openai/gpt-4o-mini"
    assert fakes["openai"].last.body["model"] == "gpt-4o-mini"


def test_streaming_request_is_routed(proxy, fakes):
    stream = oa_client(proxy).chat.completions.create(
        model="none", messages=[{"role": "user", "content": CODE}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == f"echo: {CODE}"
    assert fakes["anthropic"].last.body["stream"] is True


def test_a_named_model_is_not_rerouted(proxy, fakes):
    headers, _ = ask(proxy, REASONING, model="anthropic/claude-sonnet-4-6")
    assert "x-plano-route" not in headers
    assert fakes["anthropic"].last.body["model"] == "claude-sonnet-4-6"
    assert not fakes["openai"].requests


def test_the_provider_hint_header_wins_over_routing(proxy, fakes):
    headers, _ = ask(proxy, CODE, extra_headers={"x-arch-llm-provider-hint": "openai/o3"})
    assert headers["x-plano-model"] == "openai/o3"
    assert not fakes["anthropic"].requests


def test_the_route_first_model_fails_over_to_the_next(proxy, fakes):
    fakes["anthropic"].push(status(503))
    headers, _ = ask(proxy, CODE)
    assert headers["x-plano-route"] == "code_generation"
    assert headers["x-plano-model"] == "openai/gpt-4o-mini"  # the route's second model
    assert len(fakes["anthropic"].requests) == 1


# --- per-request routes -------------------------------------------------------------------


def test_body_routes_override_the_config_and_are_stripped(proxy, fakes):
    routes = [
        {
            "name": "poetry",
            "description": "writing poems, haiku, sonnets and song lyrics",
            "models": ["openai/o3"],
        }
    ]
    headers, _ = ask(
        proxy, "Write a haiku about autumn leaves.", extra_body={"routing_preferences": routes}
    )
    assert headers["x-plano-route"] == "poetry"
    forwarded = fakes["openai"].last.body
    assert forwarded["model"] == "o3"
    assert "routing_preferences" not in forwarded


def test_routing_policy_shape_is_accepted(proxy, fakes):
    policy = [
        {
            "model": "anthropic/claude-sonnet-4-6",
            "routing_preferences": [
                {"name": "travel", "description": "planning trips, flights, hotels and visas"}
            ],
        }
    ]
    headers, _ = ask(
        proxy,
        "Find me a cheap flight and a hotel in Lisbon for May.",
        extra_body={"routing_policy": policy},
    )
    assert headers["x-plano-route"] == "travel"
    assert "routing_policy" not in fakes["anthropic"].last.body


def test_bad_body_routes_are_a_400_in_the_client_shape(proxy, fakes):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(proxy, CODE, extra_body={"routing_preferences": [{"name": "x"}]})
    assert "description" in caught.value.message
    with pytest.raises(anthropic.BadRequestError):
        an_client(proxy).messages.create(
            model="none",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"routing_policy": "not a list"},
        )
    assert not fakes["openai"].requests
    assert not fakes["anthropic"].requests


# --- affinity -------------------------------------------------------------------------------


def test_affinity_pins_a_session_to_its_first_route(proxy, fakes):
    session = {"X-Model-Affinity": "session-42"}
    first, _ = ask(proxy, CODE, extra_headers=session)
    assert first["x-plano-route"] == "code_generation"
    later, _ = ask(proxy, REASONING, extra_headers=session)
    assert later["x-plano-route"] == "code_generation"  # pinned, not re-decided
    other, _ = ask(proxy, REASONING, extra_headers={"X-Model-Affinity": "session-43"})
    assert other["x-plano-route"] == "complex_reasoning"


# --- the decision endpoints ------------------------------------------------------------------


def test_routing_endpoint_chat_completions(proxy, fakes):
    code, body = post(
        f"{proxy.url}/routing/v1/chat/completions",
        {"model": "none", "messages": [{"role": "user", "content": CODE}]},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    assert code == 200
    assert body["route"] == "code_generation"
    assert body["models"] == ["anthropic/claude-sonnet-4-6", "openai/gpt-4o-mini"]
    assert body["model"] == "anthropic/claude-sonnet-4-6"
    assert body["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert body["backend"] == "embedded"
    assert set(body["scores"]) == {"code_generation", "complex_reasoning"}
    assert body["scores"]["code_generation"] > body["scores"]["complex_reasoning"]
    assert not fakes["openai"].requests
    assert not fakes["anthropic"].requests


def test_routing_endpoint_messages_and_responses(proxy):
    _, messages = post(
        f"{proxy.url}/routing/v1/messages",
        {"max_tokens": 10, "messages": [{"role": "user", "content": REASONING}]},
    )
    assert messages["route"] == "complex_reasoning"
    assert messages["models"][0] == "openai/o3"
    _, responses = post(f"{proxy.url}/routing/v1/responses", {"input": CODE})
    assert responses["route"] == "code_generation"
    assert len(responses["trace_id"]) == 32


def test_routing_endpoint_no_match_is_upstream_shape(proxy):
    _, body = post(
        f"{proxy.url}/routing/v1/chat/completions",
        {"messages": [{"role": "user", "content": SMALL_TALK}]},
    )
    assert body["models"] == ["none"]
    assert body["route"] is None
    assert body["model"] == "openai/gpt-4o-mini"  # what would serve it: the default


def test_routing_endpoint_rejects_bad_input_in_the_api_shape(proxy):
    code, body = post(f"{proxy.url}/routing/v1/messages", {"messages": "nope"})
    assert code == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    code, body = post(
        f"{proxy.url}/routing/v1/chat/completions",
        {"messages": [], "routing_preferences": [{"name": 3}]},
    )
    assert code == 400
    assert "error" in body


def test_repeated_decision_comes_from_the_cache(proxy):
    prompt = {"messages": [{"role": "user", "content": "Refactor this Go code to use generics."}]}
    _, first = post(f"{proxy.url}/routing/v1/chat/completions", prompt)
    _, second = post(f"{proxy.url}/routing/v1/chat/completions", prompt)
    assert first["cached"] is False
    assert second["cached"] is True
    assert second["route"] == first["route"]


# --- a failing router never fails the request ---------------------------------------------------


def test_router_failure_falls_back_to_the_default(upstreams, fakes):
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
    config = routing_config(
        upstreams, router=f"{{backend: openai-compatible, base_url: '{dead}', timeout: 1s}}"
    )
    with ProxyThread(config) as proxy:
        headers, reply = ask(proxy, CODE)
        assert headers["x-plano-model"] == "openai/gpt-4o-mini"
        assert headers["x-plano-route"] == ""
        assert reply.choices[0].message.content == f"echo: {CODE}"
        _, decision = post(
            f"{proxy.url}/routing/v1/chat/completions",
            {"messages": [{"role": "user", "content": CODE}]},
        )
        assert decision["route"] is None
        assert decision["fallback"]
        assert "openai-compatible" in decision["fallback"]
        assert proxy.server.router.stats.fallbacks["openai-compatible"] == 2


def test_a_config_without_routes_does_not_route(upstreams, fakes):
    config = routing_config(upstreams)
    import dataclasses

    config = dataclasses.replace(config, routes=())
    with ProxyThread(config) as proxy:
        headers, _ = ask(proxy, CODE)
        assert "x-plano-route" not in headers
        assert headers["x-plano-model"] == "openai/gpt-4o-mini"


def test_v03_inline_routes_are_served(upstreams, fakes):
    oa_url, an_url = upstreams["openai"][1], upstreams["anthropic"][1]
    config = config_from_yaml(
        f"""\
        version: v0.3.0
        listeners:
          egress_traffic: {{address: 127.0.0.1, port: 12000, message_format: openai}}
        llm_providers:
          - model: openai/gpt-4o-mini
            base_url: {oa_url}/v1
            access_key: $OPENAI_KEY
            default: true
          - model: anthropic/claude-sonnet-4-6
            base_url: {an_url}
            access_key: $ANTHROPIC_KEY
            routing_preferences:
              - name: code generation
                description: writing new code, functions, scripts and unit tests
        """,
        env={"OPENAI_KEY": OPENAI_KEY, "ANTHROPIC_KEY": ANTHROPIC_KEY},
    )
    with ProxyThread(config) as proxy:
        headers, _ = ask(proxy, CODE)
        assert headers["x-plano-route"] == "code generation"
        assert fakes["anthropic"].last.body["model"] == "claude-sonnet-4-6"


# --- review findings: decisions follow the route set they were made for -------------------


def decide(proxy, prompt: str, routes: list | None = None, headers: dict | None = None) -> dict:
    body: dict = {"messages": [{"role": "user", "content": prompt}]}
    if routes is not None:
        body["routing_preferences"] = routes
    return post(f"{proxy.url}/routing/v1/chat/completions", body, headers)[1]


def poetry(models: list[str]) -> list[dict]:
    return [{"name": "poetry", "description": "writing poems and song lyrics", "models": models}]


def test_a_cached_decision_uses_the_models_of_the_current_routes(proxy):
    prompt = "Write a short poem about a lighthouse."
    first = decide(proxy, prompt, poetry(["openai/o3"]))
    second = decide(proxy, prompt, poetry(["anthropic/claude-sonnet-4-6"]))
    assert first["models"] == ["openai/o3"]
    assert second["models"] == ["anthropic/claude-sonnet-4-6"]


def test_a_pin_holds_only_for_its_route_set(proxy):
    session = {"X-Model-Affinity": "review-session"}
    pinned = decide(proxy, CODE, headers=session)
    assert pinned["route"] == "code_generation"
    other = decide(proxy, "Write a haiku about rain.", poetry(["openai/o3"]), session)
    assert other["route"] == "poetry"
    assert other["pinned"] is False
    again = decide(proxy, REASONING, headers=session)
    assert again["route"] == "code_generation"
    assert again["pinned"] is True


def test_a_route_name_with_control_characters_is_a_400(proxy, fakes):
    routes = [{"name": "poetry\nx", "description": "writing poems", "models": ["openai/o3"]}]
    with pytest.raises(openai.BadRequestError) as caught:
        ask(proxy, "Write a haiku", extra_body={"routing_preferences": routes})
    assert "printable" in caught.value.message
    assert not fakes["openai"].requests


def test_a_non_ascii_route_name_travels_percent_encoded(proxy, fakes):
    routes = [
        {"name": "poésie", "description": "writing poems and song lyrics", "models": ["openai/o3"]}
    ]
    headers, _ = ask(
        proxy, "Write a poem about the sea.", extra_body={"routing_preferences": routes}
    )
    assert headers["x-plano-route"] == "po%C3%A9sie"


def test_a_huge_prompt_is_routed_on_its_trimmed_text(proxy, fakes):
    huge = CODE + " " + "lorem ipsum " * 70_000  # ~840 kB: the router reads 32 kB of it
    headers, reply = ask(proxy, huge)
    assert headers["x-plano-route"] == "code_generation"
    assert reply.choices[0].message.content.startswith("echo: Write a Python function")
    sent = fakes["anthropic"].last.body["messages"][0]["content"]
    assert sent[0]["text"] == huge  # the provider gets all of it
