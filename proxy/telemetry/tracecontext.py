"""W3C trace context for one request: read the client's `traceparent`, decide sampling,
and write the `traceparent` each upstream call carries.

Ids are made here, on the request path, because the upstream must see them before the
request ends; the spans that use them are built later in the telemetry worker. Making an
id is one `getrandbits` call, not a span: nothing else of OpenTelemetry runs per request.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# version-traceid-parentid-flags; version ff is invalid, all-zero ids are invalid.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_SAMPLED = 0x01
_RATIO_SPACE = 1 << 64

_rand = random.getrandbits  # reseeded after fork by the random module itself


def new_trace_id() -> str:
    return f"{_rand(128) or 1:032x}"


def new_span_id() -> str:
    return f"{_rand(64) or 1:016x}"


@dataclass(slots=True, frozen=True)
class Parent:
    """What a valid incoming traceparent says."""

    trace_id: str
    span_id: str
    sampled: bool


def parse_traceparent(value: str | None) -> Parent | None:
    """The client's parent span, or None for a missing or malformed header (W3C: restart)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return Parent(trace_id, span_id, bool(int(flags, 16) & _SAMPLED))


@dataclass(slots=True)
class TraceContext:
    trace_id: str
    span_id: str  # the request's own root span, plano(inbound)
    parent_span_id: str | None
    sampled: bool

    def traceparent(self, span_id: str) -> str:
        """The header for a call made under `span_id`, a span of this request."""
        return f"00-{self.trace_id}-{span_id}-{'01' if self.sampled else '00'}"


class Sampler:
    """`tracing.random_sampling`, OpenTelemetry's ParentBased(TraceIdRatioBased) rule.

    A client that sent a traceparent already decided, and its flag is followed so a trace
    is never left with holes; other requests are kept by their trace id's low 64 bits, so
    every service using the same rule keeps the same traces. 0 turns tracing off, even for
    sampled parents: that is what someone who writes 0 means.
    """

    def __init__(self, percent: float):
        self.percent = max(0.0, min(100.0, percent))
        self._bound = round(self.percent / 100 * _RATIO_SPACE)

    @property
    def off(self) -> bool:
        return self._bound == 0

    def start(self, traceparent: str | None) -> TraceContext:
        parent = parse_traceparent(traceparent)
        span_id = new_span_id()
        if parent is not None:
            sampled = parent.sampled and not self.off
            return TraceContext(parent.trace_id, span_id, parent.span_id, sampled)
        trace_id = new_trace_id()
        return TraceContext(trace_id, span_id, None, self._keep(trace_id))

    def _keep(self, trace_id: str) -> bool:
        if self._bound >= _RATIO_SPACE:
            return True
        return int(trace_id[16:], 16) < self._bound
