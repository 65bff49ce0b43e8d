"""`plano route`: one prompt, --eval and --lint, on the embedded router, offline."""

from __future__ import annotations

import json

import pytest
from conftest import REPO
from typer.testing import CliRunner

from plano_cli.app import app

DEMO = REPO / "demos" / "preference_routing" / "config.yaml"
ROUTES = """\
version: v0.4.0
listeners: [{type: model}]
model_providers:
  - {model: openai/gpt-4o-mini, access_key: $OPENAI_API_KEY, default: true}
  - {model: openai/o3, access_key: $OPENAI_API_KEY}
routing_preferences:
"""


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps at 80 otherwise: paths and hints split
    return CliRunner()


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_json_decision_for_one_prompt(runner):
    result = runner.invoke(
        app, ["route", "Write a Rust function that parses a CSV line", "-f", str(DEMO), "--json"]
    )
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["route"] == "code_generation"
    assert decision["models"] == ["anthropic/claude-sonnet-4-6", "openai/gpt-4o-mini"]
    assert decision["model"] == "anthropic/claude-sonnet-4-6"
    assert decision["backend"] == "embedded"
    assert set(decision["scores"]) == {"code_generation", "complex_reasoning"}


def test_text_output_names_route_models_backend_and_scores(runner):
    result = runner.invoke(app, ["route", "hello, how are you?", "-f", str(DEMO), "--explain"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "(none)" in out
    assert "openai/gpt-4o-mini" in out  # the default serves it
    assert "embedded" in out
    assert "code_generation" in out
    assert "complex_reasoning" in out
    assert "why" in out


def test_eval_reports_and_gates_on_accuracy(runner, tmp_path):
    data = tmp_path / "labeled.jsonl"
    rows = [
        {"text": "Implement quicksort in C and add tests", "route": "code_generation"},
        {"text": "Fix the null pointer exception in this Java method", "route": "code_generation"},
        {"text": "Prove that the sum of two even numbers is even", "route": "complex_reasoning"},
        {"text": "good morning! nice weather today", "route": "other"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["route", "--eval", str(data), "-f", str(DEMO), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 4
    assert 0 <= report["domain_accuracy"] <= 1
    assert report["out_of_scope_recall"] in (0.0, 1.0)
    assert sum(c["count"] for c in report["confusion"]) == 4
    assert report["latency_ms"]["p50"] > 0
    assert set(report["per_route"]) <= {"code_generation", "complex_reasoning", "(none)"}

    text = runner.invoke(app, ["route", "--eval", str(data), "-f", str(DEMO)])
    assert "domain accuracy" in text.stdout
    assert "confusion" in text.stdout

    gated = runner.invoke(
        app, ["route", "--eval", str(data), "-f", str(DEMO), "--min-accuracy", "101"]
    )
    assert gated.exit_code == 1
    assert "below --min-accuracy" in gated.output


def test_eval_rejects_bad_lines_with_the_line_number(runner, tmp_path):
    data = write(tmp_path, "bad.jsonl", '{"text": "ok", "route": "code_generation"}\n{oops\n')
    result = runner.invoke(app, ["route", "--eval", str(data), "-f", str(DEMO)])
    assert result.exit_code == 2
    assert "bad.jsonl:2: not JSON" in result.output


def test_lint_flags_overlap_and_vague_routes(runner, tmp_path):
    config = write(
        tmp_path,
        "routes.yaml",
        ROUTES
        + "  - {name: python_help, description: writing and debugging Python code and scripts,"
        " models: [openai/o3]}\n"
        "  - {name: coding, description: writing and debugging code and programs in Python,"
        " models: [openai/o3]}\n"
        "  - {name: misc, description: anything else, models: [openai/gpt-4o-mini]}\n",
    )
    result = runner.invoke(app, ["route", "--lint", "-f", str(config), "--json"])
    assert result.exit_code == 1, result.output
    findings = json.loads(result.stdout)["findings"]
    codes = {(f["code"], tuple(f["routes"])) for f in findings}
    assert ("overlap", ("python_help", "coding")) in codes
    assert ("vague", ("misc",)) in codes


def test_lint_passes_distinct_routes(runner):
    result = runner.invoke(app, ["route", "--lint", "-f", str(DEMO)])
    assert result.exit_code == 0, result.output
    assert "no findings" in result.stdout


def test_usage_errors_exit_2(runner):
    assert runner.invoke(app, ["route", "-f", str(DEMO)]).exit_code == 2
    both = runner.invoke(app, ["route", "hi", "--lint", "-f", str(DEMO)])
    assert both.exit_code == 2


def test_a_config_without_routes_says_so(runner, tmp_path):
    config = write(tmp_path, "plain.yaml", ROUTES.replace("routing_preferences:\n", ""))
    result = runner.invoke(app, ["route", "hello", "-f", str(config)])
    assert result.exit_code == 1
    assert "no routing_preferences" in result.output


def test_eval_of_a_missing_file_is_a_clear_error(runner, tmp_path):
    result = runner.invoke(app, ["route", "--eval", str(tmp_path / "nope.jsonl"), "-f", str(DEMO)])
    assert result.exit_code == 2
    assert "nope.jsonl: No such file or directory" in result.output
    assert "Traceback" not in result.output


def test_lint_flags_terse_routes_and_suggests_library_examples(runner):
    from proxy.routing.embedded.library import LIBRARY

    seed = REPO / "tests" / "data" / "seed_demo.yaml"
    result = runner.invoke(app, ["route", "--lint", "-f", str(seed), "--json"])
    assert result.exit_code == 1, result.output
    findings = {f["routes"][0]: f for f in json.loads(result.stdout)["findings"]}
    assert {name: f["code"] for name, f in findings.items()} == {
        "complex_reasoning": "terse",
        "code_generation": "terse",
    }
    code = {ex for kind in LIBRARY if kind.name == "code generation" for ex in kind.examples}
    assert len(findings["code_generation"]["examples"]) == 3
    assert set(findings["code_generation"]["examples"]) <= code
    assert "'code generation'" in findings["code_generation"]["hint"]
    shown = runner.invoke(app, ["route", "--lint", "-f", str(seed)])
    assert "examples:" in shown.stdout
    assert f'- "{findings["code_generation"]["examples"][0]}"' in shown.stdout


def test_lint_says_when_no_library_type_fits_a_terse_route(runner, tmp_path):
    config = write(
        tmp_path,
        "routes.yaml",
        ROUTES
        + "  - {name: garden, description: plants and lawns, models: [openai/o3]}\n"
        + "  - {name: pets, description: dogs and cats, models: [openai/o3],"
        " examples: [my puppy chews the sofa, is chocolate bad for cats]}\n",
    )
    result = runner.invoke(app, ["route", "--lint", "-f", str(config), "--json"])
    findings = json.loads(result.stdout)["findings"]
    terse = [f for f in findings if f["code"] == "terse"]
    assert [f["routes"] for f in terse] == [["garden"]]  # pets has examples
    assert "no built-in task type or domain fits it" in terse[0]["hint"]
    assert "examples" not in terse[0]
