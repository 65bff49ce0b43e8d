"""`$VAR`, `${VAR}` and `${VAR:-default}` expansion in config values.

Variables come from the process environment first, then from a `.env` file beside the
config, the same precedence docker compose uses. `$$` is a literal dollar sign.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath

from proxy.config.problems import Path

_REFERENCE = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


_ONLY_REFERENCES = re.compile(r"(?:\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)+")


def is_reference_only(text: str) -> bool:
    """True for `$KEY` or `${A}${B}`: text that names variables and holds no value."""
    return _ONLY_REFERENCES.fullmatch(text.strip()) is not None


@dataclass(frozen=True, slots=True)
class EnvReference:
    """One `$VAR` use: which variable, at which node, and whether it was resolved."""

    name: str
    path: Path
    resolved: bool


class EnvExpander:
    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.references: list[EnvReference] = []

    def expand(self, text: str, path: Path) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name = match.group("braced") or match.group("bare")
            value = self.env.get(name)
            if value is None or value == "":
                default = match.group("default")
                if default is not None:
                    self.references.append(EnvReference(name, path, True))
                    return default
                self.references.append(EnvReference(name, path, False))
                return match.group(0)  # kept as written, so the problem stays visible
            self.references.append(EnvReference(name, path, True))
            return value

        return _REFERENCE.sub(substitute, text)


class EnvFileError(Exception):
    """A `.env` beside the config exists but cannot be read."""


def environment_for(config_path: FsPath | None, base: Mapping[str, str] | None = None) -> dict:
    """The variables a config sees: the process environment over its `.env` file."""
    merged: dict[str, str] = {}
    if config_path is not None:
        dotenv_file = config_path.parent / ".env"
        if dotenv_file.is_file():
            from dotenv import dotenv_values  # only paid for when a .env exists

            try:
                values = dotenv_values(dotenv_file, encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
                raise EnvFileError(f"cannot read {dotenv_file}: {reason}") from None
            merged.update({k: v for k, v in values.items() if v is not None})
    merged.update(os.environ if base is None else base)
    return merged
