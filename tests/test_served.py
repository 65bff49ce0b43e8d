"""Nothing configured is silently ignored: every schema key is enforced, refused or inert.

The table is proxy.config.served. These tests walk the schema, so a key added there
without a decision fails here; and they use every not-served key in a config, so
`plano up` refuses it (naming the key, at its line) and `plano validate` warns.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, check
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.config import Mode
from proxy.config.problems import format_path
from proxy.config.schema_check import load_schema
from proxy.config.served import TABLE, Status, lookup

ENV = {"K": "sk-test-key"}


def schema_key_paths(schema: dict) -> dict[str, str]:
    """Every key path of the schema -> how a user reads it (listeners[].input_filters).

    Walks properties, items, additionalProperties (a map's entries are keys too),
    oneOf/anyOf/allOf, if/then/else and $ref. An object that accepts keys it does not
    list (no additionalProperties) has an `*` path for them: they are accepted, so they
    need a status like any other.
    """
    definitions = schema.get("definitions", {})
    paths: dict[str, str] = {}

    def add(pointer: str, shown: str) -> None:
        paths.setdefault(pointer, shown)

    def walk(node: object, pointer: str, shown: str, seen: frozenset[str]) -> None:
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(definitions[name], pointer, shown, seen | {name})
        for key, child in node.get("properties", {}).items():
            child_shown = f"{shown}.{key}" if shown else key
            add(f"{pointer}/{key}", child_shown)
            walk(child, f"{pointer}/{key}", child_shown, seen)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            add(f"{pointer}/*", f"{shown}.*")
            walk(extra, f"{pointer}/*", f"{shown}.*", seen)
        elif pointer and node.get("type") == "object" and extra in (None, True):
            add(f"{pointer}/*", f"{shown}.*")
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, f"{pointer}/*", f"{shown}[]", seen)
        for keyword in ("oneOf", "anyOf", "allOf"):
            for sub in node.get(keyword, []):
                walk(sub, pointer, shown, seen)
        for keyword in ("if", "then", "else"):
            walk(node.get(keyword), pointer, shown, seen)

    walk(schema, "", "", frozenset())
    return paths


SCHEMA_PATHS = schema_key_paths(load_schema())
NOT_SERVED = sorted(p for p, e in TABLE.items() if e.status is Status.NOT_SERVED)


def test_every_schema_key_has_a_status():
    missing = [p for p in SCHEMA_PATHS if lookup(p) is None]
    assert missing == [], "add these to proxy/config/served.py's TABLE"


def test_the_walk_reaches_every_kind_of_node():
    assert "/listeners/*/input_filters" in SCHEMA_PATHS  # if/then + items + $ref
    assert "/listeners/ingress_traffic/port" in SCHEMA_PATHS  # else + $ref
    assert "/model_aliases/*/fallbacks" in SCHEMA_PATHS  # additionalProperties
    assert "/overrides/*" in SCHEMA_PATHS  # an object open to any key
    assert "/model_metrics_sources/*/model_aliases/*" in SCHEMA_PATHS


def test_no_entry_names_a_key_the_schema_lacks():
    assert [p for p in TABLE if p not in SCHEMA_PATHS] == []


def test_every_entry_says_why():
    assert all(entry.note.strip() for entry in TABLE.values())


# --- each not-served key: refused by `up`, a warning for `validate` ---------------------

LISTENER = "listeners:\n  - name: m\n    type: model\n    port: 12000\n"
PROVIDERS = "model_providers:\n  - {model: openai/gpt-4o, access_key: $K, default: true}\n"


def config(listener: str = "", top: str = "", providers: str = PROVIDERS) -> str:
    listener = textwrap.indent(textwrap.dedent(listener), "    ") if listener else ""
    return "version: v0.4.0\n" + LISTENER + listener + providers + textwrap.dedent(top)


# pointer -> (config, the path the problem names, text on the line it points at)
EXAMPLES: dict[str, list[tuple[str, tuple, str]]] = {
    "/mode": [(config(top="mode: prompt\n"), ("mode",), "mode: prompt")],
    "/listeners/*/type": [
        (
            "version: v0.4.0\nlisteners:\n  - {name: m, type: model}\n"
            "  - {name: p, type: prompt}\n" + PROVIDERS,
            ("listeners", 1, "type"),
            "type: prompt",
        ),
    ],
    "/listeners/ingress_traffic": [
        (
            "version: v0.3.0\nlisteners:\n  ingress_traffic: {port: 10000}\n"
            "  egress_traffic: {port: 12000}\n" + PROVIDERS,
            ("listeners", "ingress_traffic"),
            "ingress_traffic:",
        )
    ],
    "/model_providers/*/model": [
        (
            config(providers=PROVIDERS + "  - {model: chatgpt/gpt-5.2}\n"),
            ("model_providers", 1, "model"),
            "chatgpt/gpt-5.2",
        ),
        (
            config(
                providers=PROVIDERS
                + "  - {model: amazon_bedrock/claude, base_url: 'https://b', access_key: $K}\n"
            ),
            ("model_providers", 1, "model"),
            "amazon_bedrock/claude",
        ),
    ],
    "/model_providers/*/provider_interface": [
        (
            config(
                providers=PROVIDERS
                + "  - {model: sub/gpt-5, base_url: 'https://s', provider_interface: chatgpt}\n"
            ),
            ("model_providers", 1, "provider_interface"),
            "provider_interface: chatgpt",
        )
    ],
    "/llm_providers/*/model": [
        (
            config(providers="llm_providers:\n  - {model: chatgpt/gpt-5, default: true}\n"),
            ("llm_providers", 0, "model"),
            "chatgpt/gpt-5",
        )
    ],
    "/llm_providers/*/provider_interface": [
        (
            config(
                providers="llm_providers:\n  - {model: s/g, base_url: 'https://s', "
                "provider_interface: chatgpt, default: true}\n"
            ),
            ("llm_providers", 0, "provider_interface"),
            "provider_interface: chatgpt",
        )
    ],
    "/endpoints": [
        (config(top="endpoints:\n  app: {endpoint: 'app:80'}\n"), ("endpoints",), "endpoints:")
    ],
    "/prompt_targets": [
        (
            config(top="prompt_targets:\n  - {name: t, description: d}\n"),
            ("prompt_targets",),
            "prompt_targets:",
        )
    ],
    "/system_prompt": [
        (config(top="system_prompt: Be brief.\n"), ("system_prompt",), "system_prompt:")
    ],
    "/prompt_guards": [
        (
            config(
                top="prompt_guards:\n  input_guards:\n    jailbreak:\n"
                "      on_exception: {message: blocked}\n"
            ),
            ("prompt_guards",),
            "prompt_guards:",
        )
    ],
    "/tracing/trace_arch_internal": [
        (
            config(top="tracing:\n  trace_arch_internal: true\n"),
            ("tracing", "trace_arch_internal"),
            "trace_arch_internal:",
        )
    ],
    "/tracing/exporters": [
        (
            config(top="tracing:\n  exporters: [{type: posthog, url: 'https://p', api_key: $K}]\n"),
            ("tracing", "exporters"),
            "exporters:",
        )
    ],
    "/routing/routing_budget": [
        (
            config(top="routing:\n  routing_budget: {max_ms: 50}\n"),
            ("routing", "routing_budget"),
            "routing_budget:",
        )
    ],
    "/prompt_caching": [
        (config(top="prompt_caching: {enabled: true}\n"), ("prompt_caching",), "prompt_caching:")
    ],
    "/model_metrics_sources": [
        (
            config(top="model_metrics_sources:\n  - {type: cost, provider: models.dev}\n"),
            ("model_metrics_sources",),
            "model_metrics_sources:",
        )
    ],
}
for _key, _value in [
    ("prompt_target_intent_matching_threshold", "0.5"),
    ("optimize_context_window", "true"),
    ("use_agent_orchestrator", "true"),
    ("upstream_tls_ca_path", "/etc/ca.pem"),
]:
    EXAMPLES[f"/overrides/{_key}"] = [
        (config(top=f"overrides:\n  {_key}: {_value}\n"), ("overrides", _key), f"{_key}:")
    ]
EXAMPLES["/overrides/*"] = [
    (config(top="overrides:\n  made_up: 1\n"), ("overrides", "made_up"), "made_up:")
]

CASES = [
    pytest.param(text, path, marker, id=f"{pointer}#{i}")
    for pointer, examples in EXAMPLES.items()
    for i, (text, path, marker) in enumerate(examples)
]


def test_every_not_served_key_has_an_example():
    assert sorted(EXAMPLES) == NOT_SERVED


def _refusals(result, path):
    return [p for p in result.problems if p.code == "not-served" and p.path == path]


@pytest.mark.parametrize(("text", "path", "marker"), CASES)
def test_up_refuses_the_key_at_its_line(text, path, marker):
    result = check(text, env=ENV, mode=Mode.SERVE)
    assert not result.ok
    assert result.config is None
    (problem,) = _refusals(result, path)
    assert problem.is_error
    assert problem.message.startswith(f"{format_path(path)}: ")
    assert "not served" in problem.message or "do nothing" in problem.message
    assert marker in text.splitlines()[problem.line - 1]


def test_a_listener_refused_for_its_type_is_not_refused_again_for_what_it_holds():
    text, path, _ = EXAMPLES["/listeners/*/type"][0]
    result = check(text, env=ENV, mode=Mode.SERVE)
    assert [p.path for p in result.problems if p.code == "not-served"] == [path]


@pytest.mark.parametrize(("text", "path", "marker"), CASES)
def test_validate_warns(text, path, marker):
    result = check(text, env=ENV)
    assert result.ok, [p.message for p in result.errors]
    (problem,) = _refusals(result, path)
    assert not problem.is_error
    assert "`plano up` refuses" in problem.hint


def test_validate_exits_0_with_the_warning_and_1_with_strict(tmp_path, monkeypatch):
    monkeypatch.setenv("K", "sk-test-key")
    text, _, _ = EXAMPLES["/prompt_guards"][0]
    file = tmp_path / "c.yaml"
    file.write_text(text)
    line = text.splitlines().index("prompt_guards:") + 1
    result = CliRunner().invoke(app, ["validate", str(file)])
    assert result.exit_code == 0, result.output
    assert f"{file}:{line}:1: warning: prompt_guards: prompt guards" in result.output
    assert CliRunner().invoke(app, ["validate", "--strict", str(file)]).exit_code == 1


def test_plano_up_refuses_before_serving(tmp_path):
    text, _, _ = EXAMPLES["/prompt_guards"][0]
    file = tmp_path / "c.yaml"
    file.write_text(
        text.replace("port: 12000", "port: 1")
    )  # would fail to bind, if it got that far
    done = subprocess.run(
        [sys.executable, "-m", "plano_cli", "up", str(file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"K": "sk-test-key", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1
    refused = "prompt_guards: prompt guards (jailbreak detection) are not served"
    assert f"{file}:8:1: error: {refused}" in done.stderr
    assert "plano up: fix the errors above" in done.stderr
    assert "cannot listen" not in done.stderr


@pytest.mark.parametrize(
    "top",
    [
        "mode: llm\n",
        "state_storage: {type: memory}\n",
        "state_storage: {type: sqlite, path: /tmp/s.db}\n",
        "routing: {session_cache: {type: memory}}\n",
        "routing: {session_cache: {type: redis, url: 'redis://h:6379', tenant_header: x-t}}\n",
        "shared_state: {type: redis, url: 'redis://h:6379/0', timeout: 50ms}\n",
        "shared_state: {type: redis, url: 'rediss://h:6380', on_unavailable: fail_closed}\n",
        "tracing: {trace_arch_internal: false, exporters: []}\n",
        "overrides: {orchestrator_model_context_length: 4096, use_agent_orchestrator: false}\n",
        "overrides: {agent_orchestration_model: plano/Plano-Orchestrator}\n",
        "overrides: {disable_signals: true, upstream_timeout_ms: 30000}\n",
        "ratelimits: []\nfilters: []\nprompt_guards: {}\n",
        "ratelimits:\n  - model: openai/gpt-4o\n    selector: {key: x-team}\n"
        "    limit: {tokens: 100, unit: minute}\n",
        "filters: [{id: g, type: http, url: 'http://g:1', timeout: 2s, on_error: fail_open,"
        " mode: observe}]\n",
    ],
)
def test_what_is_served_is_not_refused(top):
    result = check(config(top=top), env=ENV, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.errors]


def test_refused_keys_are_documented():
    doc = (REPO / "docs" / "up.md").read_text()
    section = doc.split("## Refused keys", 1)[1].split("\n## ", 1)[0]
    missing = [SCHEMA_PATHS[p] for p in NOT_SERVED if f"`{SCHEMA_PATHS[p]}`" not in section]
    assert missing == []
