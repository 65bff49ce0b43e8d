"""The config keys of observability: tracing.store, admin, pricing, and what they become."""

from __future__ import annotations

from conftest import check, found

from proxy.config.model import Admin, TraceStoreSettings
from proxy.pricing import Price, cost_usd
from proxy.routing.selection import rank_models
from proxy.telemetry.settings import worker_settings

BASE = """
version: v0.3.0
listeners:
  - name: llm
    type: model
    port: 12000
model_providers:
  - model: openai/gpt-4o
    access_key: $OPENAI_API_KEY
    default: true
  - model: openai/gpt-4o-mini
    access_key: $OPENAI_API_KEY
"""
ENV = {"OPENAI_API_KEY": "k"}


def test_defaults_keep_traces_locally_and_serve_admin_on_9901_or_a_free_port():
    result = check(BASE, ENV)
    assert result.ok
    config = result.config
    assert config.tracing.random_sampling == 100
    assert config.tracing.store == TraceStoreSettings()
    assert config.admin == Admin(enabled=True, address="127.0.0.1", port=None)
    settings = worker_settings(config)
    assert settings.store_enabled
    assert settings.capture_messages
    assert settings.signals
    assert settings.admin_port is None


def test_store_admin_and_pricing_are_read():
    result = check(
        BASE
        + """
tracing:
  random_sampling: 25
  store:
    path: /var/lib/plano/traces.db
    retention_days: 2
    max_traces: 500
    capture_messages: false
admin:
  address: 0.0.0.0
  port: 9400
pricing:
  openai/gpt-4o-mini: {input: 9, output: 9}
  acme/: {input: 0.5, output: 1, cached_input: 0.1}
overrides:
  disable_signals: true
""",
        ENV,
    )
    assert result.ok, [p.message for p in result.problems]
    config = result.config
    assert config.tracing.store == TraceStoreSettings(
        enabled=True,
        path="/var/lib/plano/traces.db",
        retention_days=2.0,
        max_traces=500,
        capture_messages=False,
    )
    assert config.admin == Admin(enabled=True, address="0.0.0.0", port=9400)
    assert config.pricing["acme/"] == Price(0.5, 1.0, 0.1)
    settings = worker_settings(config)
    assert not settings.signals
    assert not settings.ships_bodies  # nothing stores or scores the messages
    assert settings.prices["openai/gpt-4o-mini"] == Price(9.0, 9.0)
    # The config's price wins over the built-in table, for cost and for `prefer: cheapest`.
    assert cost_usd("openai/gpt-4o-mini", 1_000_000, 0, overrides=config.pricing) == 9.0
    assert rank_models(["openai/gpt-4o-mini", "openai/gpt-4o"], "cheapest") == [
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
    ]
    assert rank_models(
        ["openai/gpt-4o-mini", "openai/gpt-4o"], "cheapest", prices=config.pricing
    ) == ["openai/gpt-4o", "openai/gpt-4o-mini"]


def test_admin_port_on_a_listener_port_is_an_error_at_its_line():
    result = check(BASE + "admin:\n  port: 12000\n", ENV)
    assert found(result, "duplicate-port") == [
        ("admin port 12000 is already listener 'llm's port", 14, 9)
    ]


def test_bad_values_are_schema_errors():
    result = check(
        BASE
        + """
tracing:
  store:
    max_traces: 0
    unknown: 1
admin:
  port: 70000
pricing:
  openai/gpt-4o: {input: -1}
""",
        ENV,
    )
    assert not result.ok
    messages = " | ".join(p.message for p in result.errors)
    for fragment in ("max_traces", "unknown", "70000", "output", "-1"):
        assert fragment in messages, fragment
