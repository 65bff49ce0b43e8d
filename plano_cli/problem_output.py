"""How config problems look in a terminal; shared by `validate` and `up`.

Styled with typer's ANSI helpers rather than rich: this runs on every CI `validate`,
and rich's console import alone costs ~50 ms of start-up. Colors are dropped when the
output is not a terminal.
"""

from __future__ import annotations

import sys
from functools import cache

import typer

from proxy.config import LoadResult, Problem
from proxy.config.redact import mask_spans, redact_line


@cache
def marks() -> tuple[str, str]:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return ("✓", "✗") if "utf" in encoding else ("OK", "FAIL")


def print_result(result: LoadResult, *, show_source: bool = True, err: bool = False) -> None:
    ok_mark, bad_mark = marks()
    counts = ", ".join(
        part
        for part in (_plural(len(result.errors), "error"), _plural(len(result.warnings), "warning"))
        if part
    )
    mark = typer.style(ok_mark, fg="green") if result.ok else typer.style(bad_mark, fg="red")
    suffix = typer.style(f"  ({counts})", dim=True) if counts else ""
    typer.echo(f"{mark} {result.file}{suffix}", err=err)
    lines = result.text.splitlines() if show_source and result.problems else []
    lines = mask_spans(lines, result.secret_spans)
    for problem in result.problems:
        print_problem(problem, lines, err=err)


def print_problem(problem: Problem, lines: list[str], *, err: bool = False) -> None:
    color = "red" if problem.is_error else "yellow"
    severity = typer.style(str(problem.severity), fg=color, bold=True)
    typer.echo(f"  {problem.located()}: {severity}: {problem.message}", err=err)
    if lines and problem.line and problem.line <= len(lines):
        gutter = f"{problem.line:>5} | "
        excerpt = redact_line(lines[problem.line - 1])
        typer.echo(typer.style(gutter, dim=True) + excerpt, err=err)
        caret = " " * (len(gutter) - 2) + "| " + " " * ((problem.column or 1) - 1) + "^"
        typer.echo(typer.style(caret, dim=True), err=err)
    if problem.hint:
        typer.echo("      " + typer.style("hint:", fg="cyan") + f" {problem.hint}", err=err)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}" if count else ""
