"""Schema failures become located problems with a fix, all of them in one run."""

from __future__ import annotations

from conftest import check, found


def test_several_mistakes_are_all_reported_in_one_run():
    result = check("""\
        version: v0.4.0
        listeners:
          - name: m
            type: modle
            port: "12000"
            filter_chain: [a]
        model_providers:
          - model: openai/gpt-4o
            api_key: $K
            default: yes please
          - model: gpt-4o-mini
        model_aliases:
          fast: {target: nothing}
        tracing:
          random_sampling: 150
        """)
    codes = sorted(p.code for p in result.errors)
    assert codes == sorted(
        [
            "bad-value",
            "wrong-type",
            "unknown-key",
            "unknown-key",
            "wrong-type",
            "provider-model-format",
            "unknown-model",
            "out-of-range",
        ]
    )
    assert [p.line for p in result.errors] == sorted(p.line for p in result.errors)


def test_unknown_key_renamed_hint_and_location():
    result = check("""\
        version: v0.4.0
        listeners:
          - name: m
            type: model
            filter_chain: [a]
        filters: [{id: a, url: http://localhost:1}]
        model_providers: [{model: openai/gpt-4o, access_key: $K}]
        """)
    problem = next(p for p in result.errors if p.code == "unknown-key")
    assert problem.message == "unknown key 'filter_chain' in listeners[0]"
    assert (problem.line, problem.column) == (5, 5)
    assert problem.hint == "upstream renamed this key: rename it to 'input_filters'."


def test_unknown_key_did_you_mean():
    result = check("""\
        version: v0.4.0
        listeners: [{name: m, type: model}]
        model_providers:
          - model: openai/gpt-4o
            acess_key: $K
        """)
    problem = next(p for p in result.errors if p.code == "unknown-key")
    assert problem.hint == "did you mean 'access_key'?"


def test_unknown_key_without_a_close_match_lists_allowed_keys():
    result = check("version: v0.4.0\nlisteners: [{name: m, type: model, zzz: 1}]\n")
    problem = next(p for p in result.errors if p.code == "unknown-key")
    assert problem.hint.startswith("allowed keys here: address, agents,")


def test_key_that_belongs_one_level_down():
    result = check("""\
        version: v0.3.0
        listeners: [{name: p, type: prompt}]
        prompt_targets:
          - name: t
            description: d
            path: /x
        """)
    problem = next(p for p in result.errors if p.code == "unknown-key")
    assert "belongs under 'endpoint'" in problem.hint


def test_enum_did_you_mean():
    result = check("version: v0.4.0\nlisteners: [{name: m, type: modle}]\n")
    assert found(result, "bad-value") == [
        ("listeners[0].type: 'modle' is not one of: model, prompt, agent", 2, 29)
    ]
    assert result.errors[0].hint == "did you mean 'model'?"


def test_wrong_type_names_both_types():
    result = check("version: v0.4.0\nlisteners: [{name: m, type: model, port: '80'}]\n")
    assert found(result, "wrong-type") == [
        ("listeners[0].port must be a whole number, not '80'", 2, 42)
    ]


def test_unset_variable_in_a_number_field_is_explained():
    result = check("version: v0.4.0\nlisteners: [{name: m, type: model, port: $PORT}]\n")
    problem = next(p for p in result.errors if p.code == "wrong-type")
    assert "environment variable" in problem.hint


def test_set_variable_in_a_number_field_becomes_a_number():
    result = check(
        "version: v0.4.0\nlisteners: [{name: m, type: model, port: $PORT}]\n"
        "model_providers: [{model: openai/gpt-4o, access_key: $K}]\n",
        env={"PORT": "8080", "K": "x"},
    )
    assert result.ok
    assert result.config.listeners[0].port == 8080


def test_missing_required_keys():
    result = check("prompt_targets: [{name: t, description: d}]\n")
    assert sorted(p.extra["key"] for p in result.errors if p.code == "missing-key") == [
        "listeners",
        "version",
    ]
    messages = {p.message for p in result.errors}
    assert "the config is missing required key 'version'" in messages


def test_missing_nested_key_points_at_its_parent():
    result = check("""\
        version: v0.4.0
        listeners: [{name: m, type: model}]
        model_providers:
          - name: x
            access_key: $K
        """)
    assert found(result, "missing-key") == [
        ("model_providers[0] is missing required key 'model'", 4, 5)
    ]


def test_wrong_type_of_a_secret_does_not_echo_it():
    result = check(
        "version: v0.4.0\nlisteners: [{name: m, type: model}]\n"
        "model_providers: [{model: openai/gpt-4o, access_key: 1234567890123}]\n"
    )
    problem = next(p for p in result.errors if p.code == "wrong-type")
    assert "1234567890123" not in problem.message
    assert problem.message == "model_providers[0].access_key must be a string, not a hidden value"


def test_unknown_version_lists_the_accepted_ones():
    result = check("version: v9.0\nlisteners: [{name: m, type: model}]\n")
    problem = next(p for p in result.errors if p.code == "bad-value")
    assert "v0.4.0" in problem.message


def test_not_a_mapping_and_empty_file():
    assert [p.code for p in check("- a\n- b\n").errors] == ["not-a-mapping"]
    assert [p.code for p in check("# only a comment\n").errors] == ["empty-config"]


def test_a_config_of_model_providers_alone_gets_the_defaults_in_one_warning():
    result = check(
        "model_providers:\n  - {model: openai/gpt-4o-mini, access_key: $K, default: true}\n",
        env={"K": "x"},
    )
    assert result.ok, [p.message for p in result.errors]
    defaults = [p for p in result.warnings if p.code == "defaults"]
    assert [p.message for p in defaults] == [
        "no version or listeners in the config: serving it as version v0.4.0 "
        "with one model listener on port 12000"
    ]
    assert [(lst.type.value, lst.port, lst.implicit) for lst in result.config.listeners] == [
        ("model", 12000, True)
    ]
    assert result.config.version == "v0.4.0"


def test_only_the_missing_key_is_filled_in():
    result = check(
        "version: v0.3.0\nmodel_providers:\n  - {model: openai/gpt-4o, access_key: $K}\n",
        env={"K": "x"},
    )
    assert result.ok
    assert [p.message for p in result.warnings if p.code == "defaults"] == [
        "no listeners in the config: serving it as one model listener on port 12000"
    ]
