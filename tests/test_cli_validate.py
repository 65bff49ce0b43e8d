"""`plano validate` and friends, driven through the CLI runner and as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO
from typer.testing import CliRunner

from plano_cli.app import app

GOOD = (
    "version: v0.4.0\nlisteners: [{type: model}]\nmodel_providers:\n"
    "  - {model: openai/gpt-4o, access_key: $OPENAI_API_KEY}\n"
)
BAD = """\
version: v0.4.0
listeners:
  - name: m
    type: model
    filter_chain: [a]
model_providers:
  - model: gpt-4o
"""


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return CliRunner()


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_file_exits_0_with_warnings_shown(runner, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}  (1 warning)" in result.output
    assert f"{path}:4:40: warning: environment variable OPENAI_API_KEY is not set" in result.output
    assert "access_key: $OPENAI_API_KEY}" in result.output  # a reference is not a secret


def test_invalid_file_exits_1_with_every_problem_and_hints(runner, tmp_path):
    path = write(tmp_path, "bad.yaml", BAD)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    out = result.output
    assert f"{path}:5:5: error: unknown key 'filter_chain' in listeners[0]" in out
    assert "hint: upstream renamed this key: rename it to 'input_filters'." in out
    assert f"{path}:7:12: error: model 'gpt-4o' must name its provider" in out
    assert "    5 |     filter_chain: [a]" in out  # the source line, with a caret under it
    assert "(2 errors" in out


def test_missing_file_exits_2(runner, tmp_path):
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file or directory" in result.output


def test_no_argument_uses_the_config_in_the_current_directory(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "no config file given" in result.output
    write(tmp_path, "config.yaml", GOOD)
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0
    assert "config.yaml" in result.output


def test_directories_are_walked(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "set")
    write(tmp_path, "a.yaml", GOOD)
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "b.yml", BAD)
    write(tmp_path, "notes.txt", "not yaml")
    result = runner.invoke(app, ["validate", "--quiet", str(tmp_path)])
    assert result.exit_code == 1
    assert "2 files checked: 1 valid, 1 invalid" in result.output
    assert "a.yaml" not in result.output  # --quiet hides files without problems
    assert "b.yml" in result.output


def test_json_output(runner, tmp_path):
    good, bad = write(tmp_path, "good.yaml", GOOD), write(tmp_path, "bad.yaml", BAD)
    result = runner.invoke(app, ["validate", "--format", "json", str(good), str(bad)])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    first, second = report["files"]
    assert (first["valid"], first["errors"], first["warnings"]) == (True, 0, 1)
    assert second["problems"][0] == {
        "severity": "error",
        "code": "unknown-key",
        "message": "unknown key 'filter_chain' in listeners[0]",
        "file": str(bad),
        "line": 5,
        "column": 5,
        "path": "listeners[0].filter_chain",
        "hint": "upstream renamed this key: rename it to 'input_filters'.",
    }


def test_strict_fails_on_warnings(runner, tmp_path):
    path = write(tmp_path, "good.yaml", GOOD)
    assert runner.invoke(app, ["validate", "--strict", str(path)]).exit_code == 1


def test_literal_keys_never_reach_the_output(runner, tmp_path):
    secret = "sk-live-0123456789abcdefghij"
    path = write(
        tmp_path,
        "c.yaml",
        "version: v0.4.0\nlisteners: [{type: model}]\n"
        f"model_providers:\n  - model: openai/gpt-4o\n    access_key: {secret}\n"
        "    headers: {{Authorization: 'Bearer {secret}', X: 1}}\n".replace("{{", "{")
        .replace("}}", "}")
        .replace("{secret}", secret),
    )
    for fmt in ("text", "json"):
        result = runner.invoke(app, ["validate", "--format", fmt, str(path)])
        assert secret not in result.output
    text = runner.invoke(app, ["validate", str(path)]).output
    assert "access_key: ********" in text


def test_schema_command_prints_the_schema(runner):
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["required"] == ["version", "listeners"]


def test_version_and_help(runner):
    from proxy import __version__

    assert runner.invoke(app, ["--version"]).output.strip() == f"plano {__version__}"
    help_text = runner.invoke(app, ["--help"]).output
    assert "validate" in help_text
    assert "schema" in help_text


def test_real_process_exit_codes(tmp_path):
    good, bad = write(tmp_path, "good.yaml", GOOD), write(tmp_path, "bad.yaml", BAD)
    cmd = [sys.executable, "-m", "plano_cli", "validate"]
    assert subprocess.run([*cmd, str(good)], capture_output=True).returncode == 0
    assert subprocess.run([*cmd, str(bad)], capture_output=True).returncode == 1
    assert subprocess.run([*cmd, str(tmp_path / "x.yaml")], capture_output=True).returncode == 2
    bad_flag = subprocess.run([*cmd, "--bogus"], capture_output=True, text=True)
    assert bad_flag.returncode == 2
    assert "Traceback" not in bad_flag.stderr


def test_demo_configs_are_valid(runner):
    result = runner.invoke(app, ["validate", str(REPO / "demos")])
    assert result.exit_code == 0, result.output
