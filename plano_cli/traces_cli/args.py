"""--since and --where: from the command line's strings to the store's filters."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plano_cli.traces_cli.keys import DECISIONS, OUTCOMES, WHERE_KEYS

_UNIT_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_TRUE = frozenset({"1", "true", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "no", "n", "off"})
_CHOICES = {"outcome": OUTCOMES, "decision": DECISIONS}


class ArgumentError(ValueError):
    """A bad --since or --where: a usage error (exit 2)."""


@dataclass(slots=True)
class Filters:
    since: float | None = None
    where: dict[str, str] = field(default_factory=dict)  # STORE_KEYS only
    min_latency_ms: float | None = None
    has_signals: bool | None = None
    text: str | None = None

    @property
    def has_extras(self) -> bool:
        """Whether a filter beyond what TraceStore.stats takes is set."""
        return (
            self.min_latency_ms is not None or self.has_signals is not None or self.text is not None
        )

    def store_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of TraceStore.list_traces and TraceStore.stats."""
        return {
            "since": self.since,
            "where": self.where or None,
            "min_latency_ms": self.min_latency_ms,
            "has_signals": self.has_signals,
            "text": self.text,
        }

    def matches(self, row: Any) -> bool:
        """The store's test, on one call already read (for `tail`, whose unit is a call):
        the call terms on the call; `since`, `min_latency_ms` and `has_signals` on it too,
        as it is all of its trace that `tail` has seen.

        `text` cannot be tested on a summary row: callers refuse it first.
        """
        if self.since is not None and row.started_at < self.since:
            return False
        for key, value in self.where.items():
            got = getattr(row, key)
            if got is None or str(got) != value:
                return False
        if self.min_latency_ms is not None and (
            row.latency_ms is None or row.latency_ms < self.min_latency_ms
        ):
            return False
        return self.has_signals is None or ((row.signal_count or 0) > 0) == self.has_signals


def parse_since(value: str | None, now: float | None = None) -> float | None:
    """`30m`, `2h`, `1d`, `1h30m` back from now, or an ISO time (local unless it says)."""
    if value is None:
        return None
    text = value.strip()
    if _DURATION.fullmatch(text):
        seconds = sum(float(n) * _UNIT_S[unit] for n, unit in _PART.findall(text))
        return (time.time() if now is None else now) - seconds
    try:
        # A naive time is local time: it is what the user's clock and our tables show.
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ArgumentError(
            f"--since: expected a duration such as 45s, 30m, 2h, 1d (or 1h30m) or an ISO "
            f"time such as 2025-06-14T09:30, not {value!r}"
        ) from None


def parse_where(
    items: list[str] | None, allowed: tuple[str, ...] = WHERE_KEYS, *, why_not: str = ""
) -> Filters:
    """Filters from repeated `key=value`; `since` is set by the caller. `why_not` explains
    a known key that this command does not take."""
    filters = Filters()
    given: set[str] = set()
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ArgumentError(f"--where expects key=value, not {item!r}")
        if key not in allowed and key in WHERE_KEYS:
            raise ArgumentError(f"--where: {key} is not available here{why_not}")
        if key not in allowed:
            raise ArgumentError(f"--where: unknown key {key!r}; valid keys: {', '.join(allowed)}")
        if key in given:
            # The store ANDs filters: two values for one key could never both match.
            raise ArgumentError(f"--where: {key} is given twice")
        given.add(key)
        _set(filters, key, value)
    return filters


def _set(filters: Filters, key: str, value: str) -> None:
    if key == "status":
        if not value.strip().isdigit():
            raise ArgumentError(
                f"--where status: expected an HTTP status such as 200, not {value!r}"
            )
        filters.where[key] = str(int(value))
    elif key in _CHOICES:
        choices = _CHOICES[key]
        if value.strip() not in choices:
            raise ArgumentError(
                f"--where {key}: expected one of {', '.join(choices)}, not {value!r}"
            )
        filters.where[key] = value.strip()
    elif key == "min_latency_ms":
        try:
            filters.min_latency_ms = float(value)
        except ValueError:
            raise ArgumentError(
                f"--where min_latency_ms: expected a number of milliseconds, not {value!r}"
            ) from None
    elif key == "has_signals":
        flag = value.strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ArgumentError(f"--where has_signals: expected true or false, not {value!r}")
        filters.has_signals = flag in _TRUE
    elif key == "text":
        filters.text = value
    else:
        filters.where[key] = value
