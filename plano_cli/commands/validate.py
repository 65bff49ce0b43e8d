"""`plano validate`: check config files against the schema and Plano's semantic rules."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

CONFIG_NAMES = ("plano_config.yaml", "config.yaml", "arch_config.yaml")


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def validate(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Config files or directories (every *.yaml inside). "
            "Default: plano_config.yaml, config.yaml or arch_config.yaml here.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="text for people, json for CI tools."),
    ] = OutputFormat.TEXT,
    strict: Annotated[
        bool, typer.Option("--strict", metavar="", help="Treat warnings as errors.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="Print only files with problems.")
    ] = False,
) -> None:
    """Check config files: schema, semantic rules, and unset $VARs.

    Exit code 0 when every file is valid, 1 when any is invalid, 2 on a usage or I/O error.
    """
    from plano_cli.problem_output import print_result
    from proxy.config import check_file

    paths, missing, empty_dirs = _expand(files or [])
    if not paths and not missing and not empty_dirs:
        _error(
            f"no config file given, and none of {', '.join(CONFIG_NAMES)} is in this "
            "directory.\n  usage: plano validate FILE [FILE...]"
        )
        raise typer.Exit(2)

    results, failures = [], []
    for path in paths:
        try:
            results.append(check_file(path, strict=strict))
        except (OSError, UnicodeDecodeError) as exc:
            failures.append(_failure(path, "io-error", _io_message(exc)))
        except Exception as exc:  # a bug of ours must not look like "config invalid"
            failures.append(
                _failure(
                    path,
                    "internal-error",
                    f"internal error ({type(exc).__name__}); please report it",
                )
            )
    failures += [_failure(p, "io-error", "no such file or directory") for p in missing]
    failures += [
        _failure(d, "io-error", "no *.yaml or *.yml files in this directory") for d in empty_dirs
    ]

    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(_as_json(results, failures), indent=2))
    else:
        for result in results:
            if not quiet or result.problems:
                print_result(result)
        for failure in failures:
            _error(f"{failure.file}: {failure.message}")
        if len(results) + len(failures) > 1:
            valid = sum(r.ok for r in results)
            summary = (
                f"{len(results) + len(failures)} files checked: {valid} valid, "
                f"{len(results) - valid} invalid"
                + (f", {len(failures)} unreadable" if failures else "")
            )
            typer.echo(typer.style(summary, dim=True))

    if failures:
        raise typer.Exit(2)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


def default_config() -> Path | None:
    """The config in the current directory, when no file is named."""
    return next((Path(name) for name in CONFIG_NAMES if Path(name).is_file()), None)


def _error(message: str) -> None:
    typer.echo(typer.style("error:", fg="red", bold=True) + " " + message, err=True)


def _expand(files: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """(config files, missing paths, directories without any YAML)."""
    if not files:
        found = default_config()
        return ([found] if found else []), [], []
    paths, missing, empty_dirs = [], [], []
    for entry in files:
        if entry.is_dir():
            inside = sorted(
                p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in (".yaml", ".yml")
            )
            paths.extend(inside)
            if not inside:
                empty_dirs.append(entry)
        elif entry.exists():
            paths.append(entry)
        else:
            missing.append(entry)
    return paths, missing, empty_dirs


def _failure(path: Path, code: str, message: str):
    from proxy.config import Problem, Severity

    return Problem(Severity.ERROR, code, message, file=str(path))


def _io_message(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not a UTF-8 text file"
    return getattr(exc, "strerror", None) or str(exc)


def _as_json(results, failures) -> dict:
    files = [
        {
            "file": r.file,
            "valid": r.ok,
            "errors": len(r.errors),
            "warnings": len(r.warnings),
            "problems": [p.to_dict() for p in r.problems],
        }
        for r in results
    ]
    files += [
        {"file": f.file, "valid": False, "errors": 1, "warnings": 0, "problems": [f.to_dict()]}
        for f in failures
    ]
    return {"valid": not failures and all(r.ok for r in results), "files": files}
