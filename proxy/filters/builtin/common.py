"""What the built-in guardrails share: their verdicts and the option checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from proxy.filters.verdict import Decision, Verdict

# Keys every filter entry may carry; the chain reads them, not the built-in.
COMMON_KEYS = frozenset({"id", "type", "kind", "timeout", "on_error", "mode"})
# The key `check_request` leaves in `state`, so that `answer` can tell "this filter ran
# on the request" from "this filter is an output filter" (see base.BuiltinFilter.answer).
RAN = "ran"


def modified(old: Any, new: Any) -> Verdict:
    """PASS when the walk returned the same body, else MODIFY with the new body's JSON."""
    if new is old:
        return Verdict(Decision.PASS)
    return Verdict(Decision.MODIFY, body=orjson.dumps(new))


def blocked(message: str, status: int = 400) -> Verdict:
    return Verdict(Decision.BLOCK, status=status, message=message)


def unknown_options(kind: str, options: Mapping[str, Any], known: tuple[str, ...]) -> list[str]:
    return [
        f"option {key!r} is not one of {kind}'s options ({', '.join(known)})"
        for key in options
        if key not in known and key not in COMMON_KEYS
    ]
