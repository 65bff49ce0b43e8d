"""The local provider's request hook, on its own (the served behaviour: test_local_model.py)."""

from __future__ import annotations

from proxy.embedded.chat_template import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from proxy.embedded.forced_tool import local_request
from proxy.upstream.targets import target_for


def _tool(name: str) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


ASK = [{"role": "user", "content": "hi"}]
NAMED = {"type": "function", "function": {"name": "b"}}


def test_a_named_choice_becomes_required_with_the_tool_alone():
    body = {"messages": ASK, "tools": [_tool("a"), _tool("b")], "tool_choice": NAMED}
    sent = local_request(body, "my-own.gguf")  # not served with Plano's template
    assert sent["tools"] == [_tool("b")]
    assert sent["tool_choice"] == "required"
    assert sent["parallel_tool_calls"] is False
    assert sent["messages"] == ASK
    assert "stop" not in sent
    assert body["tool_choice"] == NAMED  # the client's body is not changed


def test_with_plano_template_the_answer_begins_and_ends_with_the_call():
    body = {"messages": ASK, "tools": [_tool("b")], "tool_choice": NAMED, "stop": "END"}
    sent = local_request(body, "smollm2-135m")
    assert sent["messages"] == [*ASK, {"role": "assistant", "content": TOOL_CALL_OPEN}]
    assert sent["stop"] == ["END", TOOL_CALL_CLOSE]
    required = local_request({**body, "tool_choice": "required"}, "smollm2-135m")
    assert required["messages"][-1]["content"] == TOOL_CALL_OPEN
    assert required["stop"] == "END"  # parallel calls not refused: not cut after one


def test_other_requests_go_unchanged():
    plain = {"messages": ASK}
    assert local_request(plain, "smollm2-135m") is plain
    auto = {"messages": ASK, "tools": [_tool("a")], "tool_choice": "auto"}
    assert local_request(auto, "smollm2-135m") is auto
    unknown = {"messages": ASK, "tools": [_tool("a")], "tool_choice": NAMED}
    assert local_request(unknown, "smollm2-135m") is unknown


def test_only_the_local_provider_has_the_hook():
    from proxy_harness import config_from_yaml

    config = config_from_yaml("""\
        version: v0.4.0
        listeners: [{name: m, type: model, port: 12000}]
        model_providers:
          - {model: local/smollm2-135m, base_url: "http://127.0.0.1:1/v1", default: true}
          - {model: openai/gpt-4o, access_key: sk-x}
        """)
    local, openai_ = config.providers
    body = {"messages": ASK, "tools": [_tool("b")], "tool_choice": NAMED}
    assert target_for(local).adjust_request(body)["tool_choice"] == "required"
    assert target_for(openai_).adjust_request(body) is body
