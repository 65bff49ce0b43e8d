"""Validate config data against the JSON Schema and explain every failure in place."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path as FsPath

from proxy.config.hints import did_you_mean, unknown_key_hint
from proxy.config.problems import Path, Problem, Severity, format_path
from proxy.config.redact import MASK, is_secret_path
from proxy.config.source import SourceMap

SCHEMA_FILE = "plano_config.schema.json"

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def schema_path() -> FsPath:
    """The schema file: inside the installed wheel, or schemas/ in a source checkout."""
    # A plain path, not importlib.resources (~9 ms of imports): wheels install unpacked.
    package_dir = FsPath(__file__).resolve().parents[1]
    packaged = package_dir / "_schemas" / SCHEMA_FILE
    if packaged.is_file():
        return packaged
    return package_dir.parent / "schemas" / SCHEMA_FILE


@cache
def load_schema() -> dict:
    return json.loads(schema_path().read_text(encoding="utf-8"))


@cache
def _validator():
    from jsonschema import Draft7Validator  # heavy import, paid only when validating

    return Draft7Validator(load_schema())


def check_schema(data: object, source_map: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    for error in _validator().iter_errors(data):
        problems.extend(_explain(error, source_map))
    return _drop_redundant(problems)


def _explain(error, source_map: SourceMap) -> list[Problem]:
    path: Path = tuple(error.absolute_path)
    where = format_path(path)
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = MASK if is_secret_path(path) and error.instance is not None else error.instance

    def at_value(code, message, hint=None, extra=None) -> Problem:
        pos = source_map.value_at(path)
        return _problem(code, message, path, hint, source_map, pos, extra)

    if keyword == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        out = []
        for key in value:
            if key in allowed:
                continue
            child = (*path, key)
            hint, target = unknown_key_hint(str(key), allowed, path)
            message = f"unknown key '{key}'" + (f" in {where}" if path else "")
            pos = source_map.key_at(child)
            out.append(
                _problem(
                    "unknown-key",
                    message,
                    child,
                    hint,
                    source_map,
                    pos,
                    {"suggests": target, "parent": path},
                )
            )
        return out

    if keyword == "required" and isinstance(value, dict):
        # jsonschema reports each missing key as its own error, naming it in the message.
        key = _missing_key(error.message, error.validator_value, value)
        described = _MISSING_KEY_HINTS.get((path, key)) or (
            schema.get("properties", {}).get(key, {}).get("description")
        )
        owner = f"{where} is" if path else "the config is"
        pos = source_map.key_at(path) if path else source_map.value_at(path)
        return [
            _problem(
                "missing-key",
                f"{owner} missing required key '{key}'",
                path,
                described,
                source_map,
                pos,
                {"key": key},
            )
        ]

    if keyword == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in expected)
        message = f"{where} must be {wanted}, not {_describe(value)}"
        hint = schema.get("description")
        if isinstance(value, str) and "$" in value and any(t != "string" for t in expected):
            hint = "an environment variable here was not set, so the text stayed as written."
        return [at_value("wrong-type", message, hint)]

    if keyword == "enum":
        options = [str(o) for o in error.validator_value]
        close = did_you_mean(str(value), options)
        hint = f"did you mean '{close}'?" if close else schema.get("description")
        message = f"{where}: {_describe(value)} is not one of: {', '.join(options)}"
        return [at_value("bad-value", message, hint)]

    if keyword in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        bound = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }[keyword]
        message = f"{where} must be {bound} {error.validator_value}, not {value}"
        return [at_value("out-of-range", message, schema.get("description"))]

    if keyword == "minItems":
        message = f"{where} must list at least {error.validator_value} item(s)"
        return [at_value("too-few", message, schema.get("description"))]

    if keyword == "minLength":
        return [at_value("empty", f"{where} must not be empty", schema.get("description"))]

    if keyword == "pattern":
        message = f"{where}: {_describe(value)} is not in the expected format"
        return [at_value("bad-format", message, schema.get("description"))]

    return [at_value("schema", f"{where}: {error.message}", schema.get("description"))]


_MISSING_KEY_HINTS = {
    ((), "version"): "add `version: v0.4.0` as the first line.",
    ((), "listeners"): "add `listeners: [{name: model_listener, type: model, port: 12000}]`.",
}


def _missing_key(message: str, required: list, present: dict) -> str:
    quoted = message.removesuffix(" is a required property")
    if quoted != message and len(quoted) >= 2 and quoted[0] == quoted[-1] == "'":
        return quoted[1:-1]
    return next(k for k in required if k not in present)


def _problem(code, message, path, hint, source_map: SourceMap, pos, extra=None) -> Problem:
    return Problem(
        Severity.ERROR,
        code,
        message,
        path=path,
        hint=hint,
        file=source_map.file,
        line=pos.line,
        column=pos.column,
        extra=extra or {},
    )


def _describe(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is MASK:
        return "a hidden value"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    return repr(value)


def _drop_redundant(problems: list[Problem]) -> list[Problem]:
    """A key typed wrongly shows up twice: as unknown, and as missing. Say it once."""
    suggested = {
        (p.extra.get("parent"), p.extra.get("suggests"))
        for p in problems
        if p.code == "unknown-key" and p.extra.get("suggests")
    }
    kept, seen = [], set()
    for p in problems:
        if p.code == "missing-key" and (p.path, p.extra.get("key")) in suggested:
            continue
        # `listeners: null` fails both the union type and the else-branch: say it once.
        identity = (p.code, p.path) if p.code == "wrong-type" else (p.code, p.path, p.message)
        if identity in seen:
            continue
        seen.add(identity)
        kept.append(p)
    return kept
