"""Each semantic rule: its exact message, and the line and column it points at."""

from __future__ import annotations

from conftest import check, found

from proxy.config import Mode

HEAD = """\
version: v0.4.0
listeners:
  - name: m
    type: model
    port: 12000
"""


def test_model_needs_provider_prefix():
    result = check(HEAD + "model_providers:\n  - model: gpt-4o\n    access_key: $K\n")
    assert found(result, "provider-model-format") == [
        ("model 'gpt-4o' must name its provider: provider/model_id", 7, 12)
    ]
    assert "openai/gpt-4o" in result.errors[0].hint


def test_partial_wildcard_is_rejected():
    result = check(HEAD + "model_providers:\n  - model: openai/gpt-*\n")
    assert found(result, "provider-model-format") == [
        ("model 'openai/gpt-*': a wildcard must be the whole model id (provider/*)", 7, 12)
    ]


def test_providers_that_need_base_url():
    result = check(
        HEAD + "model_providers:\n  - model: ollama/llama3.1\n"
        "  - model: azure_openai/gpt-4o\n    access_key: $K\n"
    )
    assert found(result, "missing-base-url") == [
        ("provider 'ollama' needs base_url", 7, 12),
        ("provider 'azure_openai' needs base_url", 8, 12),
    ]


def test_unknown_provider_needs_base_url_and_interface():
    result = check(
        HEAD + "model_providers:\n  - model: acme/m1\n"
        "  - model: other/m2\n    base_url: http://localhost:9000\n"
    )
    assert found(result, "unknown-provider") == [
        (
            "provider 'acme' is not one Plano knows, so it needs base_url and provider_interface",
            7,
            12,
        ),
        ("provider 'other' is not one Plano knows, so it needs provider_interface", 8, 12),
    ]
    assert "provider_interface: openai" in result.errors[0].hint


def test_unknown_provider_with_interface_is_fine():
    result = check(
        HEAD + "model_providers:\n  - model: acme/m1\n"
        "    base_url: http://localhost:9000/v1\n    provider_interface: openai\n"
    )
    assert result.ok
    entry = result.config.providers[0]
    assert (entry.provider, entry.model_id, entry.base_url) == (
        "acme",
        "m1",
        "http://localhost:9000/v1",
    )
    assert entry.wire == "openai"


def test_wildcard_cannot_be_default():
    result = check(
        HEAD + "model_providers:\n  - model: openai/*\n    default: true\n    access_key: $K\n"
    )
    assert found(result, "wildcard-default") == [
        ("a wildcard model (openai/*) cannot be the default", 8, 5)
    ]


def test_at_most_one_default():
    result = check(
        HEAD + "model_providers:\n"
        "  - model: openai/a\n    default: true\n    access_key: $K\n"
        "  - model: openai/b\n    default: true\n    access_key: $K\n"
    )
    assert found(result, "multiple-defaults") == [
        ("more than one default model: 'openai/b' and 'openai/a' (line 7)", 11, 5)
    ]


def test_duplicate_names_models_listeners_and_ports():
    result = check("""\
        version: v0.4.0
        listeners:
          - {name: a, type: model, port: 12000}
          - {name: a, type: prompt, port: 12000}
        model_providers:
          - {model: openai/gpt-4o, name: main, access_key: $K}
          - {model: openai/gpt-4o, name: main, access_key: $K}
        """)
    assert found(result, "duplicate-listener") == [
        ("duplicate listener name 'a' (first at line 3)", 4, 5)
    ]
    assert found(result, "duplicate-port") == [
        ("listener 'a' uses port 12000, already taken by 'a'", 4, 35)
    ]
    assert found(result, "duplicate-name") == [
        ("duplicate model provider name 'main' (first at line 6)", 7, 34)
    ]
    assert found(result, "duplicate-model") == [
        ("duplicate model 'openai/gpt-4o' (first at line 6)", 7, 13)
    ]


def test_same_port_on_different_addresses_is_allowed():
    result = check("""\
        version: v0.4.0
        listeners:
          - {name: a, type: model, port: 12000, address: 127.0.0.1}
          - {name: b, type: prompt, port: 12000, address: 10.0.0.1}
        model_providers:
          - {model: openai/gpt-4o, access_key: $K}
        """)
    assert not found(result, "duplicate-port")


def test_alias_targets_must_exist():
    result = check(
        HEAD + "model_providers:\n  - model: openai/gpt-4o\n    access_key: $K\n"
        "model_aliases:\n  fast:\n    target: gpt-4o-mni\n  ok:\n    target: gpt-4o\n"
    )
    assert found(result, "unknown-model") == [
        ("alias 'fast' targets model 'gpt-4o-mni', which is not configured", 11, 13)
    ]


def test_alias_target_may_use_a_wildcard_provider():
    result = check(
        HEAD + "model_providers:\n  - model: openai/*\n    access_key: $K\n"
        "model_aliases:\n  fast:\n    target: openai/gpt-4o-mini\n"
    )
    assert result.ok
    assert result.config.models.resolve("fast").model == "openai/gpt-4o-mini"


def test_filter_and_agent_ids_must_exist():
    result = check("""\
        version: v0.4.0
        filters:
          - {id: guard, url: http://localhost:1}
        agents:
          - {id: rag, url: http://localhost:2}
        listeners:
          - name: a
            type: agent
            input_filters: [gaurd]
            agents:
              - id: ragg
                description: retrieval
                input_filters: [nope]
        """)
    assert found(result, "unknown-filter") == [
        ("filter 'gaurd' is not defined in the top-level filters list", 9, 21),
        ("filter 'nope' is not defined in the top-level filters list", 13, 25),
    ]
    assert result.errors[0].hint == "did you mean 'guard'?"
    # A dangling agent is accepted by upstream: a warning when validating...
    assert found(result, "unknown-agent") == [
        ("agent 'ragg' is not defined in the top-level agents list", 11, 13)
    ]
    assert not any(p.is_error for p in result.problems if p.code == "unknown-agent")


def test_dangling_agent_is_an_error_when_serving():
    result = check(
        """\
        version: v0.4.0
        agents: [{id: rag, url: http://localhost:2}]
        listeners:
          - {name: a, type: agent, agents: [{id: ragg, description: retrieval}]}
        """,
        mode=Mode.SERVE,
    )
    # Agent listeners are refused by `up` anyway (not served yet); the dangling id is named too.
    assert [p.code for p in result.errors if p.code != "not-served"] == ["unknown-agent"]


def test_route_models_must_exist():
    result = check(
        HEAD + "model_providers:\n  - model: openai/gpt-4o\n    access_key: $K\n"
        "routing_preferences:\n  - name: code\n    description: code\n"
        "    models: [openai/gpt-4o, anthropic/claude]\n"
    )
    assert found(result, "unknown-model") == [
        ("route 'code' lists model 'anthropic/claude', which is not in model_providers", 12, 29)
    ]


def test_top_level_routes_need_v04():
    result = check(
        HEAD.replace("v0.4.0", "v0.3.0")
        + "model_providers:\n  - model: openai/gpt-4o\n    access_key: $K\n"
        "routing_preferences:\n  - {name: code, description: code, models: [gpt-4o]}\n"
    )
    assert found(result, "version-feature") == [
        ("top-level routing_preferences need version v0.4.0 (this file says v0.3.0)", 9, 1)
    ]


def test_one_model_listener():
    result = check("""\
        version: v0.4.0
        listeners:
          - {name: a, type: model, port: 1}
          - {name: b, type: model, port: 2}
        model_providers: [{model: openai/gpt-4o, access_key: $K}]
        """)
    assert found(result, "multiple-model-listeners") == [
        ("only one model listener is allowed; 'b' is a second one (the first is 'a')", 4, 21)
    ]


def test_otlp_endpoint_is_well_formed():
    bad = check(
        HEAD + "model_providers: [{model: openai/gpt-4o, access_key: $K}]\n"
        "tracing:\n  opentracing_grpc_endpoint: localhost:4317\n"
    )
    assert found(bad, "otlp-endpoint") == [
        ("OTLP endpoint 'localhost:4317' must be a URL with scheme and host", 8, 30)
    ]
    good = check(
        HEAD + "model_providers: [{model: openai/gpt-4o, access_key: $K}]\n"
        "tracing:\n  opentracing_grpc_endpoint: http://collector:4317\n"
    )
    assert not found(good, "otlp-endpoint")


def test_both_provider_lists():
    result = check(
        HEAD + "model_providers: [{model: openai/a, access_key: $K}]\n"
        "llm_providers: [{model: openai/b, access_key: $K}]\n"
    )
    assert found(result, "both-provider-lists") == [
        ("both 'llm_providers' and 'model_providers' are set", 7, 1)
    ]


def test_prompt_target_endpoint_must_exist():
    result = check("""\
        version: v0.3.0
        listeners: [{name: p, type: prompt}]
        endpoints:
          app_server: {endpoint: "127.0.0.1:80"}
        prompt_targets:
          - name: t
            description: d
            endpoint: {name: app_servr, path: /x}
        """)
    assert found(result, "unknown-endpoint") == [
        (
            "prompt target 't' calls endpoint 'app_servr', which is not defined under endpoints",
            8,
            22,
        )
    ]
    assert result.errors[0].hint == "did you mean 'app_server'?"


def test_invalid_urls():
    result = check(
        HEAD + "model_providers:\n  - model: openai/gpt-4o\n"
        "    base_url: api.openai.com\n    access_key: $K\n"
        "agents: [{id: a, url: 'localhost:8000'}]\n"
    )
    assert found(result, "invalid-url") == [
        ("base_url 'api.openai.com' is not an http(s) URL", 8, 15),
        ("url 'localhost:8000' is not an http(s) URL", 10, 23),
    ]


def test_unset_variable_is_a_warning_for_validate_and_an_error_for_up():
    text = (
        HEAD + "model_providers:\n  - model: openai/a\n    access_key: $OPENAI_KEY\n"
        "  - model: openai/b\n    access_key: ${OPENAI_KEY}\n"
    )
    expected = [
        (
            "environment variable OPENAI_KEY is not set; "
            "model_providers[0].access_key and 1 more field need it",
            8,
            17,
        )
    ]
    validated = check(text)
    assert validated.ok
    assert found(validated, "missing-env") == expected
    served = check(text, mode=Mode.SERVE)
    assert not served.ok
    assert found(served, "missing-env") == expected
    assert check(text, env={"OPENAI_KEY": "k"}, mode=Mode.SERVE).ok


def test_literal_key_warns_without_showing_it():
    result = check(
        HEAD + "model_providers:\n  - model: openai/a\n    access_key: sk-live-0123456789abcdef\n"
    )
    assert found(result, "literal-secret") == [
        ("access_key of openai/a is written in the file", 8, 17)
    ]
    assert all("sk-live" not in (p.message + (p.hint or "")) for p in result.problems)


def test_missing_key_for_a_hosted_provider_warns():
    result = check(HEAD + "model_providers:\n  - model: anthropic/claude-sonnet-4-6\n")
    assert found(result, "missing-access-key") == [
        (
            "anthropic/claude-sonnet-4-6 has no access_key; requests to it will be sent "
            "without credentials",
            7,
            12,
        )
    ]


def test_strict_turns_warnings_into_errors():
    text = HEAD + "model_providers:\n  - model: openai/a\n    access_key: $UNSET\n"
    assert check(text).ok
    strict = check(text, strict=True)
    assert not strict.ok
    assert [p.code for p in strict.errors] == ["missing-env"]


AGENTS_ON_MODEL_LISTENER = """\
version: v0.3.0
agents: [{id: a, url: "http://a:1"}]
model_providers: [{model: openai/gpt-4o, access_key: k, default: true}]
listeners:
  - name: m
    type: model
    agents: [{id: a, description: does things}]
"""


def test_agents_on_a_model_listener_would_do_nothing():
    message = "model listener 'm' lists agents, which only agent listeners run"
    validated = check(AGENTS_ON_MODEL_LISTENER)
    assert validated.ok
    assert found(validated, "agents-on-non-agent-listener") == [(message, 7, 5)]
    served = check(AGENTS_ON_MODEL_LISTENER, mode=Mode.SERVE)
    assert not served.ok
    assert found(served, "agents-on-non-agent-listener") == [(message, 7, 5)]


def test_an_agent_listener_is_served():
    text = AGENTS_ON_MODEL_LISTENER.replace("type: model", "type: agent")
    result = check(text, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.errors]
    assert result.config.listeners[0].timeout_s == 30.0  # upstream's default for agents
