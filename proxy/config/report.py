"""Collects problems found after parsing, placing each at its line and column."""

from __future__ import annotations

from proxy.config.problems import Path, Problem, Severity
from proxy.config.source import SourceMap


class Reporter:
    def __init__(self, source_map: SourceMap):
        self.source_map = source_map
        self.problems: list[Problem] = []

    def error(
        self, code: str, message: str, path: Path, hint: str | None = None, *, at_key: bool = False
    ) -> None:
        self._add(Severity.ERROR, code, message, path, hint, at_key)

    def warning(
        self, code: str, message: str, path: Path, hint: str | None = None, *, at_key: bool = False
    ) -> None:
        self._add(Severity.WARNING, code, message, path, hint, at_key)

    def _add(self, severity, code, message, path, hint, at_key) -> None:
        pos = self.source_map.key_at(path) if at_key else self.source_map.value_at(path)
        self.problems.append(
            Problem(
                severity,
                code,
                message,
                path=path,
                hint=hint,
                file=self.source_map.file,
                line=pos.line,
                column=pos.column,
            )
        )
