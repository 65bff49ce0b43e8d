"""Deprecated forms become one typed, immutable Config."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import check, found

from proxy.config import ConfigError, load_config
from proxy.config.model import ListenerType, Secret


def test_v03_inline_routes_become_top_level_routes():
    result = check("""\
        version: v0.3.0
        listeners: [{name: m, type: model}]
        model_providers:
          - model: openai/gpt-4o
            access_key: $K
            routing_preferences:
              - {name: code, description: writing code}
          - model: anthropic/claude-sonnet-4-6
            access_key: $K
            routing_preferences:
              - {name: review, description: reviewing code}
              - {name: debug, description: fixing bugs}
        """)
    assert result.ok
    routes = {r.name: (r.description, r.models) for r in result.config.routes}
    assert routes == {
        "code": ("writing code", ("openai/gpt-4o",)),
        "review": ("reviewing code", ("anthropic/claude-sonnet-4-6",)),
        "debug": ("fixing bugs", ("anthropic/claude-sonnet-4-6",)),
    }
    assert not found(result, "inline-routing-preferences")  # v0.3 style in a v0.3 file


def test_inline_routes_in_v04_warn():
    result = check("""\
        version: v0.4.0
        listeners: [{name: m, type: model}]
        model_providers:
          - model: openai/gpt-4o
            access_key: $K
            routing_preferences: [{name: code, description: writing code}]
        """)
    assert result.ok
    assert found(result, "inline-routing-preferences")[0][1:] == (6, 5)


def test_inline_routes_warn_once_per_list():
    result = check("""\
        version: v0.4.0
        listeners: [{name: m, type: model}]
        model_providers:
          - model: openai/gpt-4o
            access_key: $K
            routing_preferences:
              - {name: code, description: writing code}
              - {name: code, description: the same name again}
              - {name: debug, description: fixing bugs}
        """)
    problems = [p for p in result.problems if p.code == "inline-routing-preferences"]
    assert [(p.message, p.line) for p in problems] == [
        ("inline routing_preferences under openai/gpt-4o are deprecated in v0.4.0", 6)
    ]
    assert problems[0].hint == (
        "move routes 'code', 'debug' to the top-level routing_preferences "
        "with `models: [openai/gpt-4o]`."
    )


def test_upstream_timeout_ms_is_the_default_listener_timeout():
    result = check("""\
        version: v0.4.0
        listeners:
          - {name: m, type: model}
          - {name: n, type: prompt, timeout: 5s}
        model_providers: [{model: openai/gpt-4o, access_key: $K}]
        overrides: {upstream_timeout_ms: 45000}
        """)
    assert [lst.timeout_s for lst in result.config.listeners] == [45.0, 5.0]


def test_legacy_routing_llm_provider_names_the_router_model():
    result = check("""\
        version: v0.1.0
        listeners: [{name: m, type: model}]
        llm_providers:
          - {name: arch-router, model: arch/Arch-Router, base_url: 'http://localhost:11434'}
        routing: {llm_provider: arch-router}
        """)
    assert result.config.routing.router_model == "arch-router"
    assert result.config.models.resolve("arch-router").model == "arch/Arch-Router"


def test_legacy_listeners_and_providers():
    result = check("""\
        version: v0.1.0
        listeners:
          ingress_traffic: {address: 127.0.0.1, port: 10001, timeout: 30s}
        llm_providers:
          - {name: OpenAI, provider: openai, model: gpt-4o, access_key: $K, default: true}
        """)
    assert result.ok
    config = result.config
    prompt, model = config.listeners
    assert (prompt.type, prompt.address, prompt.port, prompt.timeout_s) == (
        ListenerType.PROMPT,
        "127.0.0.1",
        10001,
        30.0,
    )
    assert (model.type, model.port, model.implicit) == (ListenerType.MODEL, 12000, True)
    provider = config.providers[0]
    assert (provider.name, provider.model, provider.default) == ("OpenAI", "openai/gpt-4o", True)
    assert {p.code for p in result.warnings} >= {
        "legacy-listeners",
        "deprecated-key",
        "legacy-provider-field",
    }


def test_defaults_are_filled_in():
    result = check("""\
        version: v0.4.0
        listeners: [{type: model}, {type: agent, agents: [{id: a, description: d}]}]
        agents: [{id: a, url: http://localhost:1}]
        model_providers: [{model: openai/gpt-4o, access_key: $K}]
        """)
    model, agent = result.config.listeners
    assert (model.name, model.address, model.port, model.timeout_s, model.max_retries) == (
        "model_listener",
        "0.0.0.0",
        12000,
        300.0,
        2,
    )
    assert (agent.name, agent.port) == ("agent_listener", 8001)
    assert result.config.routing.session_ttl_seconds == 600
    assert result.config.overrides.upstream_connect_timeout_s == 5.0
    assert result.config.overrides.max_upstream_response_bytes == 32 * 1024 * 1024
    assert result.config.providers[0].base_url == "https://api.openai.com/v1"


def test_config_is_immutable_and_hides_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: v0.4.0\nlisteners: [{type: model}]\n"
        "model_providers: [{model: openai/gpt-4o, access_key: $K}]\n"
    )
    config = load_config(path, env={"K": "sk-secret-value-123"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.version = "x"
    with pytest.raises(TypeError):
        config.aliases["x"] = "y"
    key = config.providers[0].access_key
    assert isinstance(key, Secret)
    assert key.reveal() == "sk-secret-value-123"
    assert "sk-secret" not in repr(config)
    assert "sk-secret" not in str(key)


def test_load_config_raises_with_every_problem(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: v0.4.0\nlisteners: [{type: model}]\n"
        "model_providers: [{model: gpt-4o, access_key: $K}]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    codes = {p.code for p in info.value.problems if p.is_error}
    assert codes == {"provider-model-format", "missing-env"}
    assert str(info.value).startswith(f"{path}:3:")


def test_model_index_resolution():
    result = check("""\
        version: v0.4.0
        listeners: [{type: model}]
        model_providers:
          - {model: openai/gpt-4o, name: main, access_key: $K, default: true}
          - {model: anthropic/*, access_key: $K}
          - {model: together_ai/openai/gpt-oss-20b, access_key: $K}
        model_aliases: {smart: {target: main}}
        """)
    index = result.config.models
    assert index.resolve("main").model == "openai/gpt-4o"
    assert index.resolve("gpt-4o").model == "openai/gpt-4o"
    assert index.resolve("smart").model == "openai/gpt-4o"
    assert index.resolve("anthropic/claude-haiku-4-5").model == "anthropic/claude-haiku-4-5"
    assert index.resolve("openai/gpt-oss-20b").model == "together_ai/openai/gpt-oss-20b"
    assert index.resolve("mistral/x") is None
    assert result.config.default_provider.name == "main"


def test_max_upstream_response_bytes_is_read_and_checked():
    base = (
        "version: v0.4.0\nlisteners: [{type: model}]\nmodel_providers: [{model: openai/gpt-4o}]\n"
    )
    set_ = check(base + "overrides: {max_upstream_response_bytes: 1048576}\n")
    assert set_.ok
    assert set_.config.overrides.max_upstream_response_bytes == 1048576
    assert "max_upstream_response_bytes" not in set_.config.overrides.other
    too_small = check(base + "overrides: {max_upstream_response_bytes: 10}\n")
    assert not too_small.ok
    assert any("max_upstream_response_bytes" in p.message for p in too_small.errors)
