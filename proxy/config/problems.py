"""Findings about a config file: what is wrong, where, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

Path = tuple[str | int, ...]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding, located at a node of the YAML file."""

    severity: Severity
    code: str
    message: str
    path: Path = ()
    hint: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def escalated(self) -> Problem:
        """The same finding as an error (for --strict)."""
        return replace(self, severity=Severity.ERROR)

    def located(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        return where

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": str(self.severity),
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": format_path(self.path),
            "hint": self.hint,
        }


def format_path(path: Path) -> str:
    """Render a node path the way a user reads YAML: listeners[0].agents[1].id."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


class ConfigError(Exception):
    """Raised when a config cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.is_error]
        first = errors[0] if errors else (problems[0] if problems else None)
        summary = f"{first.located()}: {first.message}" if first else "invalid config"
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(summary + more)
