"""Where Plano keeps its files: $PLANO_HOME, by default ~/.plano."""

from __future__ import annotations

import os
from pathlib import Path


def plano_home() -> Path:
    return Path(os.environ.get("PLANO_HOME") or Path.home() / ".plano").expanduser()


def default_trace_store() -> Path:
    """The trace store when the config names none: the gateway writes it, the readers
    (`plano traces`, `plano route --learn`) look for it."""
    return plano_home() / "traces.db"
