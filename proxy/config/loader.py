"""The config pipeline: YAML with positions -> env -> schema -> normalize -> rules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path as FsPath

from proxy.config.env import EnvFileError, environment_for
from proxy.config.model import Config, ListenerType
from proxy.config.normalize import DEFAULT_PORTS, normalize
from proxy.config.problems import ConfigError, Problem, Severity, format_path
from proxy.config.report import Reporter
from proxy.config.rules import Facts, check_rules
from proxy.config.schema_check import check_schema
from proxy.config.source import parse_yaml
from proxy.config.versions import CURRENT_VERSION, UPSTREAM_VERSIONS, canonical_version

FATAL_YAML = frozenset({"yaml-syntax", "yaml-too-large"})


class Mode(StrEnum):
    VALIDATE = "validate"  # CI: unset variables are warnings
    SERVE = "serve"  # `plano up`: an unset variable is an error


@dataclass(slots=True)
class LoadResult:
    file: str
    problems: list[Problem] = field(default_factory=list)
    config: Config | None = None
    text: str = field(default="", repr=False)  # for source excerpts
    secret_spans: list = field(default_factory=list, repr=False)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_file(
    path: str | FsPath,
    *,
    mode: Mode = Mode.VALIDATE,
    env: Mapping[str, str] | None = None,
    strict: bool = False,
) -> LoadResult:
    """Check one config file. Raises OSError when it cannot be read."""
    fs_path = FsPath(path)
    text = fs_path.read_text(encoding="utf-8")
    try:
        variables = environment_for(fs_path, env)
    except EnvFileError as exc:
        result = LoadResult(file=str(path), text=text)
        result.problems.append(
            Problem(
                Severity.ERROR,
                "env-file",
                str(exc),
                file=str(path),
                line=1,
                column=1,
                hint="a .env file holds NAME=value lines in UTF-8.",
            )
        )
        return _finish(result, strict)
    return check_text(text, file=str(path), env=variables, mode=mode, strict=strict)


def check_text(
    text: str,
    *,
    file: str = "<config>",
    env: Mapping[str, str] | None = None,
    mode: Mode = Mode.VALIDATE,
    strict: bool = False,
) -> LoadResult:
    result = LoadResult(file=file, text=text)
    parsed = parse_yaml(text, file, os.environ if env is None else env)
    result.problems.extend(parsed.problems)
    result.secret_spans = parsed.source_map.secret_spans
    if any(p.code in FATAL_YAML for p in parsed.problems):
        return _finish(result, strict)

    data = parsed.data
    report = Reporter(parsed.source_map)
    if not isinstance(data, dict):
        if data is None:
            report.error(
                "empty-config",
                "the file is empty",
                (),
                "a config needs at least `version:` and `listeners:`.",
            )
        else:
            report.error(
                "not-a-mapping",
                "a config must be a YAML mapping of keys to values",
                (),
                "start with `version: v0.4.0` on the first line.",
            )
        result.problems.extend(report.problems)
        return _finish(result, strict)

    _report_unset_variables(parsed.env_refs, report, serving=mode is Mode.SERVE)

    version = _read_version(data, report)
    schema_view = {**data, "version": version} if version else data
    filled = _gateway_defaults(data, report)
    if filled:
        schema_view = {**schema_view, **filled}
        version = version or filled.get("version")
    schema_problems = check_schema(schema_view, parsed.source_map)
    result.problems.extend(schema_problems)

    config = normalize(data, version or CURRENT_VERSION, report)
    env_paths = frozenset(ref.path for ref in parsed.env_refs)
    facts = Facts(
        config,
        data,
        env_paths,
        serving=mode is Mode.SERVE,
        schema_paths=frozenset(p.path for p in schema_problems),
    )
    check_rules(facts, report)
    result.problems.extend(report.problems)
    result.problems.sort(key=lambda p: (p.line or 0, p.column or 0, p.severity != Severity.ERROR))
    result = _finish(result, strict)
    if result.ok:
        result.config = config
    return result


def load_config(
    path: str | FsPath, *, env: Mapping[str, str] | None = None, mode: Mode = Mode.SERVE
) -> Config:
    """The Config of a file, or ConfigError with every problem."""
    result = check_file(path, mode=mode, env=env)
    if not result.ok or result.config is None:
        raise ConfigError(result.problems)
    return result.config


def _report_unset_variables(refs, report: Reporter, *, serving: bool) -> None:
    """One problem per unset variable, at its first use, naming every field that needs it."""
    unset: dict[str, list] = {}
    for ref in refs:
        if not ref.resolved:
            unset.setdefault(ref.name, []).append(ref.path)
    for name, paths in unset.items():
        fields = format_path(paths[0])
        if len(paths) > 1:
            fields += f" and {len(paths) - 1} more field{'s' if len(paths) > 2 else ''}"
        (report.error if serving else report.warning)(
            "missing-env",
            f"environment variable {name} is not set; {fields} "
            f"need{'s' if len(paths) == 1 else ''} it",
            paths[0],
            f"export {name}=... or add it to a .env file beside the config.",
        )


def _read_version(data: dict, report: Reporter) -> str | None:
    raw = data.get("version")
    if raw is None or raw in UPSTREAM_VERSIONS:
        return raw if isinstance(raw, str) else None
    canonical = canonical_version(raw)
    if canonical is None:
        return None  # the schema reports it, with the accepted list
    if isinstance(raw, str):
        message = f"version '{raw}' is not one upstream Plano accepts; read as '{canonical}'"
    else:
        message = f"version {raw} is a number in YAML; read as '{canonical}'"
    report.warning("version-alias", message, ("version",), f"write `version: {canonical}`.")
    return canonical


def _gateway_defaults(data: dict, report: Reporter) -> dict:
    """version and listeners for a bare model gateway config, said in one warning.

    The routing demo users paste is model_providers alone ("10 lines of YAML"): such a
    config means the current format and the one model listener upstream always serves on
    12000 (normalize adds it). A fragment without model providers stays an error: there is
    nothing to say what it would serve.
    """
    if not (data.get("model_providers") or data.get("llm_providers")):
        return {}
    filled: dict = {}
    port = DEFAULT_PORTS[ListenerType.MODEL]
    if "version" not in data:
        filled["version"] = CURRENT_VERSION
    if "listeners" not in data:
        filled["listeners"] = [{"name": "model_listener", "type": "model", "port": port}]
    if filled:
        said = []
        if "version" in filled:
            said.append(f"version {CURRENT_VERSION}")
        if "listeners" in filled:
            said.append(f"one model listener on port {port}")
        report.warning(
            "defaults",
            f"no {' or '.join(filled)} in the config: serving it as {' with '.join(said)}",
            (),
            "write them out to pin them: `version: v0.4.0` and "
            "`listeners: [{name: model_listener, type: model, port: 12000}]`.",
        )
    return filled


def _finish(result: LoadResult, strict: bool) -> LoadResult:
    if strict:
        result.problems = [p.escalated() for p in result.problems]
    return result
