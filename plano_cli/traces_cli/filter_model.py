"""A call's filter decisions, from its plano(filter) spans (proxy.filters.verdict's
attributes): what `show`, its JSON and the viewer's Filters section list.

Read with the CLI's start-up budget in mind: it imports only the contract's names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from plano_cli.traces_cli.trace_model import Call, _int, _span_ms, _str
from proxy.filters import verdict as v
from proxy.telemetry.store import SpanRow, TraceDetail

FILTER = "plano(filter)"


@dataclass(slots=True)
class FilterStep:
    """One filter call: input filters in the order they ran, then output filters (one
    call each per answer, however many chunks)."""

    position: int
    direction: str
    filter_id: str
    kind: str | None
    decision: str  # pass | modify | block | error
    mode: str  # enforce | observe
    applied: bool | None  # False: observed only, or an error let through (fail_open)
    on_error: str | None
    latency_ms: float | None
    status: int | None
    target: str | None  # agent listeners: the agent whose input it filtered
    message: str | None
    diff: str | None
    error: str | None
    chunks: int | None
    chunks_modified: int | None

    @property
    def observed(self) -> bool:
        return self.mode == v.Mode.OBSERVE

    @property
    def label(self) -> str:
        """The decision as the list of traces reads it: `block (observe)` is a block that
        observe mode did not apply."""
        return f"{self.decision} (observe)" if self.observed else self.decision

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {"position": out.pop("position"), "direction": out.pop("direction"),
                "id": out.pop("filter_id"), **out}  # fmt: skip


def filter_steps(spans: list[SpanRow]) -> list[FilterStep]:
    """The filter calls among a call's spans: input first, each direction by start."""
    found = [s for s in spans if s.name == FILTER]
    found.sort(key=lambda s: (s.attributes.get(v.ATTR_DIRECTION) == v.Direction.OUTPUT, s.start_ns))
    steps = []
    for i, span in enumerate(found, 1):
        attrs = span.attributes
        decision = _str(attrs.get(v.ATTR_DECISION))
        if decision is None:
            decision = v.Decision.ERROR if span.status_code == "error" else "?"
        applied = attrs.get(v.ATTR_APPLIED)
        steps.append(
            FilterStep(
                position=i,
                direction=_str(attrs.get(v.ATTR_DIRECTION)) or v.Direction.INPUT,
                filter_id=_str(attrs.get(v.ATTR_ID)) or "?",
                kind=_str(attrs.get(v.ATTR_KIND)),
                decision=str(decision),
                mode=_str(attrs.get(v.ATTR_MODE)) or v.Mode.ENFORCE,
                applied=applied if isinstance(applied, bool) else None,
                on_error=_str(attrs.get(v.ATTR_ON_ERROR)),
                latency_ms=_span_ms(span, "filter.duration_ms"),
                status=_int(attrs.get(v.ATTR_STATUS)),
                target=_str(attrs.get(v.ATTR_TARGET)),
                message=_str(attrs.get(v.ATTR_MESSAGE)),
                diff=_str(attrs.get(v.ATTR_DIFF)),
                error=_str(attrs.get(v.ATTR_ERROR)) or span.status_message,
                chunks=_int(attrs.get(v.ATTR_CHUNKS)),
                chunks_modified=_int(attrs.get(v.ATTR_CHUNKS_MODIFIED)),
            )
        )
    return steps


CallFilters = list[tuple[Call | None, list[FilterStep]]]


def call_filters(detail: TraceDetail, calls: list[Call]) -> CallFilters:
    """Each call's filter calls, in call order (calls that ran none left out). A trace
    whose calls are not stored yet still shows the filters its spans recorded."""
    if not calls:
        steps = filter_steps(detail.spans)
        return [(None, steps)] if steps else []
    found: CallFilters = []
    for call in calls:
        steps = filter_steps(call.spans)
        if steps:
            found.append((call, steps))
    return found
