"""Short human forms of times, durations, tokens and money, shared by every text view."""

from __future__ import annotations

import time
from datetime import UTC, datetime

NONE = "-"


def local_time(epoch: float, now: float | None = None) -> str:
    """HH:MM:SS today; month and day this year; the date otherwise. Local time."""
    when = datetime.fromtimestamp(epoch)
    today = datetime.fromtimestamp(time.time() if now is None else now)
    if when.date() == today.date():
        return when.strftime("%H:%M:%S")
    if when.year == today.year:
        return when.strftime("%b %d %H:%M")
    return when.strftime("%Y-%m-%d")


def full_local_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def iso_utc(epoch: float) -> str:
    """For JSON: unambiguous whatever the reader's time zone."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def duration_ms(ms: float | None) -> str:
    if ms is None:
        return NONE
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    return f"{ms / 60_000:.1f} min"


def tokens(inp: int | None, out: int | None) -> str:
    if inp is None and out is None:
        return NONE
    return f"{_count(inp)}→{_count(out)}"


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def cost(usd: float | None) -> str:
    if usd is None:
        return NONE  # no price known: not the same as free
    if usd == 0:
        return "$0"
    if usd < 0.0001:
        return "<$0.0001"
    if usd < 1:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def short_id(trace_id: str) -> str:
    """Like git's short hashes; `plano traces show` takes any unique prefix back."""
    return trace_id[:12]


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def clip_label(text: str, width: int) -> str:
    """`clip` for a tree label: its leading spaces are the tree's rails, so whitespace is
    kept (line breaks become spaces)."""
    text = text.replace("\r", " ").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
