"""How config problems look in a terminal; shared by `validate` and `up`."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from proxy.config import LoadResult, Problem
from proxy.config.redact import mask_spans, redact_line


@cache
def marks() -> tuple[str, str]:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return ("✓", "✗") if "utf" in encoding else ("OK", "FAIL")


def print_result(console: Console, result: LoadResult, *, show_source: bool = True) -> None:
    ok_mark, bad_mark = marks()
    errors, warnings = len(result.errors), len(result.warnings)
    counts = ", ".join(
        part for part in (_plural(errors, "error"), _plural(warnings, "warning")) if part
    )
    suffix = f"  [dim]({counts})[/dim]" if counts else ""
    if result.ok:
        console.print(f"[green]{ok_mark}[/green] {escape(result.file)}{suffix}", soft_wrap=True)
    else:
        console.print(f"[red]{bad_mark}[/red] {escape(result.file)}{suffix}", soft_wrap=True)
    lines = _source_lines(result.file) if show_source and result.problems else []
    lines = mask_spans(lines, result.secret_spans)
    for problem in result.problems:
        print_problem(console, problem, lines)


def print_problem(console: Console, problem: Problem, lines: list[str]) -> None:
    color = "red" if problem.is_error else "yellow"
    console.print(
        f"  {escape(problem.located())}: [{color}]{problem.severity}[/{color}]: "
        f"{escape(problem.message)}",
        highlight=False,
        soft_wrap=True,
    )
    if lines and problem.line and problem.line <= len(lines):
        gutter = f"{problem.line:>5} | "
        excerpt = redact_line(lines[problem.line - 1])  # backstop when parsing failed
        console.print(f"[dim]{gutter}[/dim]{escape(excerpt)}", highlight=False, soft_wrap=True)
        caret = " " * (len(gutter) - 2) + "| " + " " * ((problem.column or 1) - 1) + "^"
        console.print(f"[dim]{caret}[/dim]", highlight=False)
    if problem.hint:
        console.print(
            f"      [cyan]hint:[/cyan] {escape(problem.hint)}", highlight=False, soft_wrap=True
        )


def _source_lines(file: str) -> list[str]:
    try:
        return Path(file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}" if count else ""
