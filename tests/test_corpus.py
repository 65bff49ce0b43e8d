"""Every upstream config in ../shared/corpus is handled as its README says."""

from __future__ import annotations

import csv

import pytest

from proxy.config import check_file

# What each `invalid` file must say: the offending key and the fix.
INVALID_FIXES = {
    "cli_planoai_templates_filter_chain_guardrails.yaml": ("filter_chain", "input_filters"),
    "docs_source_build_with_plano_includes_agent_function-calling-agent.yaml": (
        "listener",
        "listeners",
    ),
}


def expected(shared):
    with open(shared / "corpus/upstream-configs/EXPECTED.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_every_corpus_file_is_listed(shared):
    listed = {row["file"] for row in expected(shared)}
    on_disk = {p.name for p in (shared / "corpus/upstream-configs").glob("*.yaml")}
    assert listed == on_disk


def test_corpus_verdicts(shared):
    for row in expected(shared):
        path = shared / "corpus/upstream-configs" / row["file"]
        result = check_file(path, env={})
        verdict = row["upstream_verdict"]
        errors = result.errors
        if verdict == "valid":
            assert result.ok, f"{row['file']}: {[p.message for p in errors]}"
            assert result.config is not None
        elif verdict == "fragment":
            assert not result.ok
            missing = {p.extra.get("key") for p in errors if p.code == "missing-key"}
            assert {"version", "listeners"} <= missing, row["file"]
        else:
            assert verdict == "invalid"
            if result.ok:  # accepted only with a warning where the meaning is unambiguous
                assert any(p.code == "version-alias" for p in result.warnings), row["file"]
                continue
            key, fix = INVALID_FIXES[row["file"]]
            offending = [p for p in errors if p.code == "unknown-key"]
            assert offending, row["file"]
            problem = offending[0]
            assert f"'{key}'" in problem.message
            assert fix in problem.hint
            assert problem.file == str(path)
            assert problem.line
            assert problem.column


@pytest.mark.parametrize(
    ("name", "line", "column"),
    [
        ("cli_planoai_templates_filter_chain_guardrails.yaml", 45, 9),
        ("docs_source_build_with_plano_includes_agent_function-calling-agent.yaml", 2, 1),
    ],
)
def test_invalid_files_point_at_the_key(shared, name, line, column):
    result = check_file(shared / "corpus/upstream-configs" / name, env={})
    problem = next(p for p in result.errors if p.code == "unknown-key")
    assert (problem.line, problem.column) == (line, column)
    # the renamed key is not also reported as a missing one
    assert not [p for p in result.errors if p.code == "missing-key"]


def test_v020_is_accepted_with_a_warning(shared):
    result = check_file(
        shared / "corpus/upstream-configs/docs_source_concepts_includes_plano_config.yaml", env={}
    )
    assert result.ok
    warning = next(p for p in result.warnings if p.code == "version-alias")
    assert warning.message == (
        "version 'v0.2.0' is not one upstream Plano accepts; read as '0.2.0'"
    )
    assert (warning.line, warning.column) == (1, 10)
    assert result.config.version == "0.2.0"


def test_routing_dev_config_normalizes(shared):
    result = check_file(shared / "data/clinc150_routes.yaml", env={})
    assert result.ok
    assert [r.name for r in result.config.routes][:2] == ["banking", "credit_cards"]
    assert len(result.config.routes) == 10
