"""shared_state and routing.session_cache: what the config says, and what is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, check, found

from proxy.config import Mode
from proxy.config.model import OnUnavailable, Secret

HEAD = """\
version: v0.4.0
listeners: [{type: model, port: 12000}]
model_providers:
  - {model: openai/gpt-4o, access_key: $K, default: true}
"""
ENV = {"K": "sk-test-key", "REDIS_URL": "redis://:pa55word@cache.internal:6379/2"}


def loaded(top: str, mode: Mode = Mode.SERVE):
    result = check(HEAD + textwrap.dedent(top), env=ENV, mode=mode)
    assert result.ok, [p.message for p in result.errors]
    return result.config


def test_shared_state_defaults():
    config = loaded("shared_state: {type: redis, url: $REDIS_URL}\n")
    state = config.shared_state
    assert state is not None
    assert state.url == Secret("redis://:pa55word@cache.internal:6379/2")
    assert "pa55word" not in repr(config)  # the URL is a Secret
    assert state.timeout_s == 0.1
    assert state.on_unavailable is OnUnavailable.FAIL_OPEN


def test_shared_state_timeout_and_failure_mode():
    config = loaded(
        "shared_state: {type: redis, url: 'redis://h:6379', timeout: 250ms,"
        " on_unavailable: fail_closed}\n"
    )
    assert config.shared_state.timeout_s == 0.25
    assert config.shared_state.on_unavailable is OnUnavailable.FAIL_CLOSED


def test_no_shared_state_keeps_affinity_in_memory():
    config = loaded("")
    assert config.shared_state is None
    assert config.routing.session_cache.type == "memory"


def test_affinity_defaults_to_the_shared_state():
    config = loaded("shared_state: {type: redis, url: $REDIS_URL}\n")
    cache = config.routing.session_cache
    assert cache.type == "redis"
    assert cache.url == config.shared_state.url


def test_a_tenant_header_alone_still_uses_the_shared_state():
    config = loaded(
        "shared_state: {type: redis, url: $REDIS_URL}\n"
        "routing: {session_cache: {tenant_header: x-tenant}}\n"
    )
    cache = config.routing.session_cache
    assert (cache.type, cache.tenant_header) == ("redis", "x-tenant")


def test_an_explicit_memory_cache_wins_over_the_shared_state():
    config = loaded(
        "shared_state: {type: redis, url: $REDIS_URL}\nrouting: {session_cache: {type: memory}}\n"
    )
    assert config.routing.session_cache.type == "memory"


def test_an_explicit_redis_cache_keeps_its_own_url():
    config = loaded("routing: {session_cache: {type: redis, url: 'redis://other:6379/1'}}\n")
    assert config.routing.session_cache.url == Secret("redis://other:6379/1")
    assert config.shared_state is None


@pytest.mark.parametrize("mode", [Mode.VALIDATE, Mode.SERVE])
@pytest.mark.parametrize(
    ("top", "path"),
    [
        ("shared_state: {type: redis, url: 'http://u:pa55word@h:6379'}\n", "shared_state"),
        ("shared_state: {type: redis, url: 'postgres://h/db'}\n", "shared_state"),
        ("routing: {session_cache: {type: redis, url: 'h:6379'}}\n", "session_cache"),
    ],
)
def test_a_url_that_is_not_redis_is_an_error_and_its_password_is_masked(top, path, mode):
    result = check(HEAD + top, env=ENV, mode=mode)
    errors = found(result, "redis-url")
    assert len(errors) == 1, result.problems
    message, line, _ = errors[0]
    assert "is not a Redis URL" in message
    assert "pa55word" not in message
    assert line == 5
    assert all("pa55word" not in p.message for p in result.problems)


def test_a_port_that_is_not_a_number_is_an_error():
    result = check(HEAD + "shared_state: {type: redis, url: 'redis://h:port/0'}\n", env=ENV)
    assert "port that is not a number" in found(result, "redis-url")[0][0]


def test_shared_state_needs_type_and_url():
    result = check(HEAD + "shared_state: {url: 'redis://h:6379'}\n", env=ENV)
    assert not result.ok
    result = check(HEAD + "shared_state: {type: memcached, url: 'redis://h'}\n", env=ENV)
    assert not result.ok


def test_a_memory_cache_with_a_url_is_told_the_url_is_unused():
    result = check(HEAD + "routing: {session_cache: {type: memory, url: 'redis://h'}}\n", env=ENV)
    assert found(result, "session-cache-url")


def test_plano_up_refuses_a_url_that_is_not_redis(tmp_path):
    file = tmp_path / "plano.yaml"
    file.write_text(HEAD + "shared_state: {type: redis, url: 'http://u:pa55word@h:6379'}\n")
    done = subprocess.run(
        [sys.executable, "-m", "plano_cli", "up", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"K": "sk-test-key", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1
    assert "is not a Redis URL" in done.stderr
    assert "pa55word" not in done.stderr + done.stdout
