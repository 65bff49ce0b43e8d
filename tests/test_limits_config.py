"""`ratelimits` in the config: what is accepted, what is refused at its line, and how each
entry resolves to the models and buckets a request is matched on."""

from __future__ import annotations

import pytest
from conftest import check, found
from multidict import CIMultiDict, CIMultiDictProxy
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.config import ConfigError, Mode, load_config
from proxy.limits.match import Matcher
from proxy.upstream.targets import PASSTHROUGH_AUTH_HEADERS

ENV = {"K": "sk-test-key"}
HEAD = """\
version: v0.4.0
listeners: [{type: model, port: 12000}]
model_providers:
  - {model: openai/gpt-4o, access_key: $K, default: true}
  - {model: openai/gpt-4o-mini, access_key: $K}
  - {model: anthropic/*, access_key: $K}
model_aliases:
  fast: {target: openai/gpt-4o-mini}
routing_preferences:
  - name: code
    description: writing code
    models: [openai/gpt-4o, anthropic/claude-sonnet-4-6]
ratelimits:
"""


def load(limits: str):
    return check(HEAD + limits, env=ENV, mode=Mode.SERVE)


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


def test_nonsense_is_refused_at_its_line():
    result = load(
        "  - {model: openai/gpt-4o, selector: {key: x-team}, limit: {tokens: 0, unit: minute}}\n"
        "  - {model: openai/gpt-4o, selector: {key: x-team}, limit: {tokens: 5, unit: week}}\n"
        "  - {model: openai/gpt-5, selector: {key: x-team}, limit: {tokens: 5, unit: day}}\n"
    )
    assert not result.ok
    lines = {p.line for p in result.errors}
    assert {14, 15, 16} <= lines, [(p.line, p.message) for p in result.errors]
    unknown = found(result, "unknown-model")
    assert unknown
    assert "openai/gpt-5" in unknown[0][0]
    assert unknown[0][1] == 16


def test_models_aliases_and_routes_resolve_to_the_models_requests_go_to():
    result = load(
        "  - {model: fast, selector: {key: x-team, value: blue},\n"
        "     limit: {tokens: 9, unit: second}}\n"
        "  - {model: code, selector: {key: X-Team}, limit: {tokens: 9, unit: day}}\n"
        "  - {model: anthropic/*, selector: {key: client_key}, limit: {tokens: 9, unit: hour}}\n"
    )
    assert result.ok, [p.message for p in result.errors]
    fast, code, _ = result.config.ratelimits
    assert (fast.value, fast.period_s) == ("blue", 1.0)
    assert (code.header, code.value, code.period_s) == ("x-team", None, 86400.0)
    matcher = Matcher(result.config)
    blue = headers(x_arch_ratelimit_selector="X-Team", x_team="blue")
    found_mini = matcher.match("openai/gpt-4o-mini", blue, None)
    assert [m.rule.label for m in found_mini] == ["x-team=blue"]
    assert [m.rule.label for m in matcher.match("openai/gpt-4o", blue, None)] == ["x-team"]
    sonnet = matcher.match("anthropic/claude-sonnet-4-6", blue, "team-blue")
    assert [m.bucket for m in sonnet] == ["1:x-team:blue", "2:client_key:team-blue"]
    # A client key's budget needs no header; without a key there is none.
    assert [m.rule.label for m in matcher.match("anthropic/x", headers(), "k1")] == ["client_key"]
    assert matcher.match("anthropic/x", headers(), None) == []
    assert matcher.match("openai/gpt-4o-mini", headers(x_team="blue"), None) == []


def test_a_star_value_is_one_budget_per_value():
    result = load(
        "  - {model: openai/gpt-4o, selector: {key: x-user, value: '*'}, "
        "limit: {tokens: 9, unit: minute}}\n"
    )
    assert result.config.ratelimits[0].value is None


PER_KEY = (
    "  - {model: openai/gpt-4o, selector: {key: client_key}, limit: {tokens: 9, unit: hour}}\n"
)


def test_a_client_key_budget_without_client_keys_is_a_warning_at_its_selector():
    """`selector: {key: client_key}` on a gateway whose model listeners take no client keys
    limits nothing: said at its line, not silently ignored."""
    result = load(PER_KEY)
    assert result.ok
    ((message, line, _),) = found(result, "client-key-budget-without-keys")
    assert line == 14
    assert "no model listener" in message
    keyed = check(
        HEAD.replace(
            "listeners: [{type: model, port: 12000}]",
            "listeners: [{type: model, port: 12000, auth: {keys: [{id: a, key: $CK}]}}]",
        )
        + PER_KEY,
        env={**ENV, "CK": "a-client-key-of-enough-length"},
        mode=Mode.SERVE,
    )
    assert keyed.ok
    assert found(keyed, "client-key-budget-without-keys") == []


CREDENTIAL_KEYS = sorted({"X-Api-Key", "proxy-authorization", *PASSTHROUGH_AUTH_HEADERS})


@pytest.mark.parametrize("key", CREDENTIAL_KEYS)
def test_a_credential_header_as_selector_is_refused_naming_it_and_client_key(key, tmp_path):
    """Its value (a key) would be part of the bucket's name: a Redis key, a memory key."""
    selector = f"selector: {{key: {key}}}"
    entry = f"  - {{model: openai/gpt-4o, {selector}, limit: {{tokens: 9, unit: hour}}}}\n"
    for mode in (Mode.VALIDATE, Mode.SERVE):
        result = check(HEAD + entry, env=ENV, mode=mode)
        assert not result.ok
        ((message, line, _),) = found(result, "credential-selector")
        assert line == 14
        assert repr(key.lower()) in message
        (problem,) = [p for p in result.errors if p.code == "credential-selector"]
        assert "client_key" in problem.hint
    path = tmp_path / "plano.yaml"
    path.write_text(HEAD + entry)
    with pytest.raises(ConfigError) as refused:
        load_config(path, env=ENV)
    assert key.lower() in str(refused.value)
    # Through the CLI too: exit 1, the key and the way out said.
    validate = CliRunner().invoke(app, ["validate", str(path)], env=ENV)
    assert validate.exit_code == 1, validate.output
    assert f"selector key {key.lower()!r} is a credential header" in validate.output
    assert "selector: {key: client_key}" in validate.output


def test_an_ordinary_header_and_client_key_selectors_are_not_credentials():
    result = load(
        "  - {model: openai/gpt-4o, selector: {key: x-team}, limit: {tokens: 9, unit: hour}}\n"
        + PER_KEY
    )
    assert result.ok, [p.message for p in result.errors]
    assert found(result, "credential-selector") == []
