"""Hostile and odd input: no traceback escapes, no credential is echoed, rules hold."""

from __future__ import annotations

import pytest
from conftest import check, found
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.config import check_file

HEAD = "version: v0.4.0\nlisteners: [{type: model}]\n"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (
            HEAD + "model_providers: [{model: openai/a, access_key: $K}]\nx: !!int abc\n",
            "yaml-value",
        ),
        (HEAD + "x: !!float abc\n", "yaml-value"),
        (HEAD + "x: !!bool maybe\n", "yaml-value"),
        (HEAD + "x: !!timestamp nope\n", "yaml-value"),
        (HEAD + "!foo x: 1\n", "yaml-value"),
        (HEAD + "- <<: 1\n", "yaml-syntax"),
        (HEAD + "a:\n  - <<: 1\n", "yaml-merge"),
        (HEAD + "? [a, b]\n: 1\n", "yaml-key"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "yaml-too-large"),
        (HEAD + "model_providers: [{model: openai/a, base_url: 'http://[::1'}]\n", "invalid-url"),
        (HEAD + "tracing: {opentracing_grpc_endpoint: 'http://u:p@h:99999'}\n", "otlp-endpoint"),
    ],
)
def test_odd_yaml_is_reported_not_raised(text, code):
    result = check(text)
    assert code in {p.code for p in result.errors}


def test_alias_bomb_is_stopped():
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    result = check("\n".join(lines) + "\n")
    assert [p.code for p in result.errors] == ["yaml-too-large"]


def test_merge_override_is_not_a_duplicate_key():
    result = check(
        HEAD + "model_providers:\n  - &p {model: openai/a, access_key: $K}\n"
        "  - <<: *p\n    model: openai/b\n"
    )
    assert not found(result, "duplicate-key")
    assert [p.model for p in result.config.providers] == ["openai/a", "openai/b"]


def test_variables_become_numbers_but_never_bools_or_secrets_typed():
    result = check(
        "version: v0.4.0\nlisteners: [{type: model, port: $PORT, name: $NAME}]\n"
        "model_providers: [{model: openai/a, access_key: $KEY, "
        "headers: {X-Flag: $FLAG}}]\n",
        env={"PORT": "8080", "NAME": "off", "KEY": "123456789", "FLAG": "on"},
    )
    assert result.ok, [p.message for p in result.errors]
    listener, provider = result.config.listeners[0], result.config.providers[0]
    assert (listener.port, listener.name) == (8080, "off")
    assert provider.access_key.reveal() == "123456789"
    assert provider.headers["X-Flag"] == "on"


def test_empty_listeners_is_one_problem():
    result = check("version: v0.4.0\nlisteners:\n")
    assert [p.code for p in result.errors] == ["wrong-type"]


def test_provider_slash_without_id():
    assert found(
        check(HEAD + "model_providers: [{model: 'openai/'}]\n"), "provider-model-format"
    ) == [("model 'openai/' has no model id after the slash", 3, 27)]


def test_upstream_generator_rules():
    result = check("""\
        version: v0.3.0
        listeners: [{type: model}]
        agents: [{id: guard, url: http://localhost:1}]
        filters: [{id: guard, url: http://localhost:2}]
        model_providers:
          - {model: openai/gpt-4o, access_key: $K, provider_interface: claude}
          - {model: gpt-4o-mini, provider: openai, provider_interface: openai}
          - {model: groq/gpt-4o, access_key: $K}
          - model: anthropic/*
            access_key: $K
            routing_preferences: [{name: code, description: code}]
          - model: arch/Arch-Router
          - model: openai/o3
            access_key: $K
            routing_preferences: [{name: code, description: other code}]
        """)
    assert [(p.code, p.message, p.line, p.column) for p in result.errors] == [
        ("duplicate-id", "duplicate agent or filter id 'guard' (first at line 3)", 4, 16),
        (
            "interface-on-known-provider",
            "provider_interface is only for providers Plano does not know; 'openai' is known",
            6,
            44,
        ),
        ("provider-and-interface", "'provider' and 'provider_interface' are both set", 7, 44),
        ("duplicate-model", "duplicate model id 'gpt-4o' (first at line 6)", 8, 13),
        ("wildcard-route", "a wildcard model (anthropic/*) cannot have routing_preferences", 11, 5),
        ("missing-base-url", "provider 'arch' needs base_url", 12, 12),
        ("duplicate-route", "duplicate routing preference 'code' (first at line 11)", 15, 34),
    ]


def test_route_to_a_wildcard_is_rejected():
    result = check(
        HEAD + "model_providers: [{model: openai/*, access_key: $K}]\n"
        "routing_preferences: [{name: r, description: d, models: [openai/*]}]\n"
    )
    assert found(result, "wildcard-route") == [("route 'r' lists a wildcard (openai/*)", 4, 58)]


def test_ports_clash_between_later_listeners_and_ipv6_any():
    result = check("""\
        version: v0.4.0
        listeners:
          - {name: a, type: model, port: 1, address: 127.0.0.1}
          - {name: b, type: prompt, port: 1, address: 127.0.0.2}
          - {name: c, type: agent, port: 1, address: 127.0.0.2, agents: [{id: x, description: d}]}
          - {name: d, type: prompt, port: 2, address: "::"}
          - {name: e, type: agent, port: 2, address: 10.0.0.1, agents: [{id: x, description: d}]}
        agents: [{id: x, url: http://localhost:9}]
        model_providers: [{model: openai/a, access_key: $K}]
        """)
    assert [m for m, _, _ in found(result, "duplicate-port")] == [
        "listener 'c' uses port 1, already taken by 'b'",
        "listener 'e' uses port 2, already taken by 'd'",
    ]


def test_otlp_endpoint_must_not_have_a_path():
    result = check(
        HEAD + "model_providers: [{model: openai/a, access_key: $K}]\n"
        "tracing: {opentracing_grpc_endpoint: 'http://collector:4317/v1/traces'}\n"
    )
    assert found(result, "otlp-endpoint")[0][0].endswith("must not have a path")


@pytest.mark.parametrize(
    "line",
    [
        "  - {model: openai/gpt-4o, access_key: SECRET1, headers: {X-Api-Token: SECRET2}, b: 1}",
        "  - {model: openai/gpt-4o, apikey: SECRET1}",
        "  - {model: openai/gpt-4o, acces_key: SECRET1, secret: SECRET2}",
        "  - {model: openai/gpt-4o, headers: 'Authorization: Bearer SECRET1'}",
        "  - {model: openai/gpt-4o, access_key: SECRET1}}",
        "  - {model: openai/gpt-4o, base_url: 'ftp://SECRET1@h/v1?api_key=SECRET2'}",
    ],
)
def test_credentials_never_reach_the_output(tmp_path, line):
    path = tmp_path / "c.yaml"
    path.write_text(
        HEAD + "model_providers:\n" + line + "\n"
        "prompt_targets: [{name: t, description: d, "
        "endpoint: {name: e, http_headers: {Authorization: SECRET3}}}]\n"
    )
    runner = CliRunner()
    for fmt in ("text", "json"):
        output = runner.invoke(app, ["validate", "--format", fmt, str(path)]).output
        assert "SECRET" not in output, output
    result = check_file(path, env={})
    assert "SECRET" not in repr(result.config) + repr(result.problems)


def test_config_repr_hides_header_values_and_urls(tmp_path):
    result = check(
        HEAD + "model_providers: [{model: openai/a, access_key: $K, "
        "headers: {Authorization: SECRET1}}]\n"
        "routing: {session_cache: {type: redis, url: 'redis://:SECRET2@h:6379'}}\n"
        "tracing: {exporters: [{type: posthog, url: 'https://x', api_key: SECRET3}]}\n",
        env={"K": "SECRET4"},
    )
    assert result.ok
    assert "SECRET" not in repr(result.config)


def test_unreadable_dotenv_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / ".env").write_bytes(b"K=\xff\xfe\n")
    path = tmp_path / "c.yaml"
    path.write_text(HEAD)
    result = check_file(path)
    assert [p.code for p in result.errors] == ["env-file"]
    assert ".env" in result.errors[0].message


def test_directory_without_yaml_and_uppercase_suffix(tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["validate", str(empty)])
    assert result.exit_code == 2
    assert "no *.yaml or *.yml files" in result.output
    (empty / "C.YAML").write_text(HEAD + "model_providers: [{model: openai/a, access_key: x}]\n")
    assert runner.invoke(app, ["validate", str(empty)]).exit_code == 0
