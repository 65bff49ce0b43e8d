"""A filter call as the trace and metrics see it: a plano(filter) step and its attributes."""

from __future__ import annotations

import time

import orjson

from proxy.config.model import Filter
from proxy.config.redact import redact_text
from proxy.filters.verdict import (
    ATTR_APPLIED,
    ATTR_DECISION,
    ATTR_DIFF,
    ATTR_DIRECTION,
    ATTR_ERROR,
    ATTR_ID,
    ATTR_KIND,
    ATTR_MESSAGE,
    ATTR_MODE,
    ATTR_ON_ERROR,
    ATTR_STATUS,
    ATTR_TARGET,
)
from proxy.gateway.exchange import Exchange, Step, StepKind
from proxy.telemetry.tracecontext import new_span_id

# A filter's own words on a span: redacted, and no longer than this.
MAX_ATTRIBUTE_TEXT = 512
MAX_DIFF_ITEMS = 8
MAX_KEY_CHARS = 40


def new_step(exchange: Exchange, spec: Filter, direction: str, target: str | None = None) -> Step:
    step = Step(StepKind.FILTER, spec.id, new_span_id(), time.perf_counter())
    step.attributes = {
        ATTR_ID: spec.id,
        ATTR_KIND: spec.kind,
        ATTR_DIRECTION: direction,
        ATTR_MODE: spec.mode,
        ATTR_ON_ERROR: spec.on_error_for(direction),
    }
    if target is not None:
        step.attributes[ATTR_TARGET] = target
    exchange.steps.append(step)
    return step


def decided(step: Step, decision: str, applied: bool, status: int | None = None) -> None:
    step.attributes[ATTR_DECISION] = decision
    step.attributes[ATTR_APPLIED] = applied
    if status is not None:
        step.attributes[ATTR_STATUS] = status


def blocked(step: Step, text: str) -> None:
    step.attributes[ATTR_MESSAGE] = capped(text)


def failed(step: Step, outcome: str, message: str) -> None:
    step.outcome = outcome
    step.detail = capped(message)
    step.attributes[ATTR_ERROR] = capped(message)


def modified(step: Step, before: bytes, after: bytes) -> None:
    step.attributes[ATTR_DIFF] = diff_summary(before, after)


def capped(text: str) -> str:
    """A filter's text fit for a span: credentials masked, bounded."""
    return redact_text(text, MAX_ATTRIBUTE_TEXT)


def diff_summary(before: bytes, after: bytes) -> str:
    """What a filter changed, in a line: the top-level keys, and which list items
    (messages) changed; the sizes when the bodies are not both JSON objects."""
    sizes = f"{len(before)} -> {len(after)} bytes"
    try:
        old, new = orjson.loads(before), orjson.loads(after)
    except orjson.JSONDecodeError:
        return sizes
    if not isinstance(old, dict) or not isinstance(new, dict):
        return sizes
    changes: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            changes.append(f"-{_shown(key)}")
        elif key not in old:
            changes.append(f"+{_shown(key)}")
        elif old[key] != new[key]:
            changes.append(_changed(_shown(key), old[key], new[key]))
    shown = changes[:MAX_DIFF_ITEMS] + (["..."] if len(changes) > MAX_DIFF_ITEMS else [])
    return capped(f"{', '.join(shown) or 'no change'} ({sizes})")


def _shown(key: str) -> str:
    """A key as a client wrote it may hold anything: escaped, and short."""
    return orjson.dumps(key[:MAX_KEY_CHARS]).decode()[1:-1]


def _changed(key: str, old: object, new: object) -> str:
    if isinstance(old, list) and isinstance(new, list):
        items = [str(i) for i in range(min(len(old), len(new))) if old[i] != new[i]]
        if len(old) != len(new):
            items.append(f"{len(old)} -> {len(new)} items")
        return f"{key}[{','.join(items[:MAX_DIFF_ITEMS])}]"
    return f"~{key}"
