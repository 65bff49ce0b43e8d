"""Where text and JSON go: rich consoles sized for pipes, JSON documents and JSON lines."""

from __future__ import annotations

import json
import os
import sys

from rich.console import Console
from rich.text import Text

from plano_cli.json_output import print_json_line

__all__ = [
    "err_console",
    "print_error",
    "print_json_line",
    "print_jsonl",
    "print_usage_error",
    "stdout_console",
]

# Piped, rich would wrap tables at 80 columns; a pipe has no width, so use a generous one.
PIPE_WIDTH = 160


def stdout_console() -> Console:
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(highlight=False, width=width)


def err_console() -> Console:
    # Error lines stay whole: scripts and tests grep them.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_jsonl(payload: object) -> None:
    """One compact line per object, flushed: `tail --json | jq` sees each as it comes."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def print_error(message: str) -> None:
    line = Text("error:", style="bold red")
    line.append(f" {message}")
    err_console().print(line)


def print_usage_error(message: str, usage: str) -> None:
    print_error(message)
    err_console().print(Text(f"  usage: {usage}"))
