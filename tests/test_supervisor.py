"""The `plano up --workers N` parent in-process: what it warns about."""

from __future__ import annotations

from conftest import check

from proxy.config import Mode
from proxy.server.supervisor import _unshared_warnings

ENV = {"K": "sk-test-key"}
HEAD = """\
version: v0.4.0
listeners: [{type: model, port: 12000}]
model_providers:
  - {model: openai/gpt-4o, access_key: $K, default: true}
  - {model: openai/gpt-4o-mini, access_key: $K}
"""
ROUTES = """\
routing_preferences:
  - {name: code, description: writing code, models: [openai/gpt-4o]}
"""
LIMITS = """\
ratelimits:
  - {model: openai/gpt-4o, selector: {key: x-team}, limit: {tokens: 5, unit: minute}}
"""
SHARED = "shared_state: {type: redis, url: 'redis://h:6379'}\n"


def loaded(top: str):
    result = check(HEAD + top, env=ENV, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.errors]
    return result.config


def test_an_in_memory_session_cache_with_routes_is_said():
    (warning,) = _unshared_warnings(loaded(ROUTES), 2)
    assert "routing.session_cache is in memory" in warning
    assert _unshared_warnings(loaded(""), 2) == []  # no routes: nothing to be sticky


def test_ratelimits_without_shared_state_are_said_with_the_multiple():
    (warning,) = _unshared_warnings(loaded(LIMITS), 3)
    assert warning == (
        "ratelimits without shared_state: each of the 3 workers keeps its own budget "
        "(up to 3× each limit); set shared_state"
    )
    # With shared_state the buckets are in Redis: one budget for every worker.
    assert _unshared_warnings(loaded(LIMITS + SHARED), 3) == []
