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
    from rich.console import Console

    from plano_cli.problem_output import print_result
    from proxy.config import check_file

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    paths, missing = _expand(files or [])
    if not paths and not missing:
        err.print(
            f"[red]error:[/red] no config file given, and none of {', '.join(CONFIG_NAMES)} "
            "is in this directory.\n  usage: plano validate FILE [FILE...]"
        )
        raise typer.Exit(2)

    results, io_errors = [], []
    for path in paths:
        try:
            results.append(check_file(path, strict=strict))
        except (OSError, UnicodeDecodeError) as exc:
            io_errors.append((str(path), _io_message(exc)))
    io_errors += [(str(p), "no such file or directory") for p in missing]

    if output_format is OutputFormat.JSON:
        typer.echo(json.dumps(_as_json(results, io_errors), indent=2))
    else:
        out = Console(highlight=False, soft_wrap=True)
        for result in results:
            if not quiet or result.problems:
                print_result(out, result)
        for file, message in io_errors:
            err.print(f"[red]error:[/red] {file}: {message}")
        if len(results) + len(io_errors) > 1:
            valid = sum(r.ok for r in results)
            out.print(
                f"[dim]{len(results) + len(io_errors)} files checked: {valid} valid, "
                f"{len(results) - valid} invalid"
                + (f", {len(io_errors)} unreadable" if io_errors else "")
                + "[/dim]"
            )

    if io_errors:
        raise typer.Exit(2)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


def _expand(files: list[Path]) -> tuple[list[Path], list[Path]]:
    if not files:
        found = next((Path(name) for name in CONFIG_NAMES if Path(name).is_file()), None)
        return ([found] if found else []), []
    paths, missing = [], []
    for entry in files:
        if entry.is_dir():
            paths.extend(sorted(p for p in entry.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif entry.exists():
            paths.append(entry)
        else:
            missing.append(entry)
    return paths, missing


def _io_message(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not a UTF-8 text file"
    return getattr(exc, "strerror", None) or str(exc)


def _as_json(results, io_errors) -> dict:
    return {
        "valid": not io_errors and all(r.ok for r in results),
        "files": [
            {
                "file": r.file,
                "valid": r.ok,
                "errors": len(r.errors),
                "warnings": len(r.warnings),
                "problems": [p.to_dict() for p in r.problems],
            }
            for r in results
        ]
        + [
            {
                "file": file,
                "valid": False,
                "errors": 1,
                "warnings": 0,
                "problems": [
                    {
                        "severity": "error",
                        "code": "io-error",
                        "message": message,
                        "file": file,
                        "line": None,
                        "column": None,
                        "path": None,
                        "hint": None,
                    }
                ],
            }
            for file, message in io_errors
        ],
    }
