"""Where Plano keeps its files: $PLANO_HOME, by default ~/.plano."""

from __future__ import annotations

import os
from pathlib import Path


def plano_home() -> Path:
    return Path(os.environ.get("PLANO_HOME") or Path.home() / ".plano").expanduser()
