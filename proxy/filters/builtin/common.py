"""What the built-in guardrails share: their verdicts and the option checks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import orjson

from proxy.filters.verdict import Decision, Verdict

# Keys every filter entry may carry; the chain reads them, not the built-in.
COMMON_KEYS = frozenset({"id", "type", "kind", "timeout", "on_error", "mode"})
# The key `check_request` leaves in `state`, so that `answer` can tell "this filter ran
# on the request" from "this filter is an output filter" (see base.BuiltinFilter.answer).
RAN = "ran"
# When a built-in running in a worker thread must give up (time.monotonic()): the chain
# sets it for the thread, whose context is a copy of the caller's.
DEADLINE: ContextVar[float | None] = ContextVar("plano_builtin_deadline", default=None)


class DeadlinePassed(Exception):
    """A built-in's long work stopped: the filter's timeout passed."""


def check_deadline() -> None:
    """Between pieces of long work: stop once the filter's time is up."""
    deadline = DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlinePassed()


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
