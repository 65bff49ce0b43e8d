"""The filter bar's language: the CLI's `--where` terms and `--since`, on one line.

    model=openai/gpt-4o-mini status=502 since=30m min_latency_ms=2000 has_signals=true
    rust csv                     bare words: a text search, as `text=rust csv`

Parsing is the CLI's own (traces_cli.args), so a bad term gets the message the CLI gives.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from plano_cli.traces_cli.args import ArgumentError, Filters, parse_since, parse_where

__all__ = ["ArgumentError", "ViewFilter", "filter_line", "parse_filter"]


@dataclass(frozen=True, slots=True)
class ViewFilter:
    """A filter as typed (shown in the status line and given back to the bar to edit) and
    as the store takes it."""

    line: str = ""
    filters: Filters = field(default_factory=Filters)

    @property
    def active(self) -> bool:
        f = self.filters
        return bool(f.since is not None or f.where or f.has_extras)


def parse_filter(line: str, now: float) -> ViewFilter:
    """Raises ArgumentError with the CLI's message for a bad term."""
    try:
        words = shlex.split(line)
    except ValueError:
        # An apostrophe in a text search ("don't") is not a quoting mistake worth refusing.
        words = line.split()
    terms: list[str] = []
    bare: list[str] = []
    since: str | None = None
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key.strip() == "since":
            if since is not None:
                raise ArgumentError("--since is given twice")
            since = value
        elif sep:
            terms.append(word)
        else:
            bare.append(word)
    if bare:
        # parse_where then refuses a `text=` given as well, as it refuses any repeated key.
        terms.append("text=" + " ".join(bare))
    filters = parse_where(terms)
    filters.since = parse_since(since, now)
    return ViewFilter(line.strip(), filters)


def filter_line(since: str | None, where: list[str] | None) -> str:
    """The bar's line for the command line's `--since` and `--where`: what the user would
    type to get the same filter."""
    terms = [f"since={since}"] if since is not None else []
    terms += where or []
    return " ".join(shlex.quote(term) for term in terms)
