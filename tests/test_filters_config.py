"""The filters' config: every key of the brief accepted, normalized and checked at its line."""

from __future__ import annotations

from conftest import check, found

from proxy.config import Mode
from proxy.config.model import FilterType

ENV = {"K": "sk-test-key"}
HEAD = """\
version: v0.4.0
listeners:
  - name: llm
    type: model
    port: 12000
    input_filters: [{inputs}]
    output_filters: [{outputs}]
model_providers:
  - {{model: openai/gpt-4o, access_key: $K, default: true}}
filters:
"""


def cfg(filters: str, inputs: str = "", outputs: str = "") -> str:
    return HEAD.format(inputs=inputs, outputs=outputs) + filters


ALL = cfg(
    """\
  - {id: guard, type: http, url: 'http://127.0.0.1:10500', timeout: 2s, on_error: fail_open,
     mode: observe}
  - {id: memory, url: 'http://127.0.0.1:10501/mcp', tool: rewrite}
  - {id: pii, type: builtin, kind: pii, action: anonymize, entities: [email, card]}
  - {id: injection, type: builtin, kind: prompt_injection, threshold: 0.5}
  - id: policy
    type: builtin
    kind: content_policy
    rules:
      - keywords: [forbidden phrase, another]
      - pattern: "(?i)\\\\bproject\\\\s+x\\\\b"
    message: "This request is not allowed by policy."
""",
    inputs="injection, pii, guard, memory, policy",
    outputs="guard",
)


def test_the_briefs_config_serves_and_normalizes():
    result = check(ALL, env=ENV, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.problems]
    by_id = {f.id: f for f in result.config.filters}
    guard = by_id["guard"]
    assert (guard.type, guard.kind, guard.timeout_s, guard.on_error, guard.mode) == (
        FilterType.HTTP,
        "http",
        2.0,
        "fail_open",
        "observe",
    )
    memory = by_id["memory"]
    assert (memory.type, memory.tool, memory.mode) == (FilterType.MCP, "rewrite", "enforce")
    # Defaults depend on the direction: closed and 5 s for input, open and 1 s for output.
    assert memory.timeout_for("input") == 5.0
    assert memory.timeout_for("output") == 1.0
    assert memory.on_error_for("input") == "fail_closed"
    assert memory.on_error_for("output") == "fail_open"
    assert dict(by_id["pii"].options) == {"action": "anonymize", "entities": ["email", "card"]}
    assert by_id["pii"].kind == "pii"
    assert by_id["pii"].tool == ""
    assert dict(by_id["injection"].options) == {"threshold": 0.5}
    policy = by_id["policy"].options
    assert policy["message"] == "This request is not allowed by policy."
    assert policy["rules"][1] == {"pattern": "(?i)\\bproject\\s+x\\b"}


def test_an_mcp_tool_defaults_to_the_filter_id():
    result = check(cfg("  - {id: memory, url: 'http://m:1/mcp'}\n"), env=ENV)
    (memory,) = result.config.filters
    assert (memory.type, memory.tool) == (FilterType.MCP, "memory")


def test_unknown_filter_ids_are_errors_at_their_line():
    result = check(cfg("  - {id: guard, type: http, url: 'http://g:1'}\n", "gaurd"), env=ENV)
    assert not result.ok
    (problem,) = [p for p in result.errors if "gaurd" in p.message]
    assert problem.line == 6


def test_url_is_required_for_http_and_mcp_filters():
    result = check(cfg("  - {id: guard, type: http}\n  - {id: m}\n"), env=ENV)
    assert found(result, "missing-filter-url") == [
        ("http filter 'guard' needs a url", 11, 10),
        ("mcp filter 'm' needs a url", 12, 10),
    ]


def test_a_builtin_takes_no_url_or_tool_and_needs_a_kind():
    result = check(
        cfg("  - {id: p, type: builtin, kind: pii, url: 'http://x:1', tool: t}\n"), env=ENV
    )
    assert [m for m, _, _ in found(result, "builtin-filter-key")] == [
        "filter 'p' is a builtin: it takes no 'url'",
        "filter 'p' is a builtin: it takes no 'tool'",
    ]
    result = check(cfg("  - {id: p, type: builtin}\n"), env=ENV)
    assert found(result, "missing-filter-kind") == [("builtin filter 'p' needs a kind", 11, 10)]


def test_builtin_options_given_to_the_wrong_kind():
    text = cfg(
        "  - id: p\n    type: builtin\n    kind: pii\n    threshold: 0.4\n"
        "  - {id: h, type: http, url: 'http://h:1', action: redact}\n"
    )
    result = check(text, env=ENV)
    assert found(result, "builtin-option") == [
        ("'threshold' is an option of prompt_injection filters; filter 'p' is pii", 14, 5),
        ("'action' is an option of built-in filters; filter 'h' is http", 15, 44),
    ]


def test_a_bad_regex_is_an_error_at_its_pattern():
    text = cfg(
        "  - id: c\n    type: builtin\n    kind: content_policy\n"
        "    rules:\n      - pattern: '(unclosed'\n"
    )
    result = check(text, env=ENV)
    # At the rule's line, in the words of the regex engine the built-in uses.
    (problem,) = result.errors
    assert "regex" in problem.message or "regular expression" in problem.message
    assert problem.line == 15


def test_threshold_out_of_range_and_bad_enums_are_schema_errors():
    text = cfg(
        "  - {id: i, type: builtin, kind: prompt_injection, threshold: 1.5}\n"
        "  - {id: h, type: http, url: 'http://h:1', on_error: ignore, mode: shadow}\n"
    )
    result = check(text, env=ENV)
    lines = sorted(p.line for p in result.errors)
    assert lines == [11, 12, 12], [p.message for p in result.errors]


def test_prompt_injection_cannot_filter_answers():
    text = cfg("  - {id: i, type: builtin, kind: prompt_injection}\n", outputs="i")
    result = check(text, env=ENV)
    assert found(result, "input-only-filter") == [
        ("filter 'i' (prompt_injection) checks requests; it cannot filter answers", 7, 22)
    ]


def test_a_zero_timeout_is_an_error():
    result = check(cfg("  - {id: h, type: http, url: 'http://h:1', timeout: 0s}\n"), env=ENV)
    assert [line for _, line, _ in found(result, "invalid-timeout")] == [11]


def test_agents_input_filters_are_served():
    text = """\
version: v0.4.0
listeners:
  - name: a
    type: agent
    agents: [{id: x, description: d, input_filters: [guard]}]
agents: [{id: x, url: 'http://x:1'}]
filters: [{id: guard, type: http, url: 'http://g:1'}]
model_providers:
  - {model: openai/gpt-4o, access_key: $K, default: true}
"""
    result = check(text, env=ENV, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.problems]
