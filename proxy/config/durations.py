"""Durations as configs write them: 500ms, 0.005s, 30s, 5m, 1h, or plain seconds."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object, default: float | None = None) -> float | None:
    """Seconds, or `default` when the value is absent or unreadable (the schema reports it)."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int | float):
        return float(value) if value >= 0 else default
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _SECONDS[match.group(2)]
    return default
