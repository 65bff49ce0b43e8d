"""Calls with filter chains, as the gateway stores them: a plano(filter) span per filter
call (proxy.filters.verdict's attributes), for the `plano traces` filter tests.

Written by filter_runs (not by trace_seed.seed, whose traces the list tests and snapshots
count):
- T_BLOCKED: a model-listener call that the `injection` guardrail blocked (403), after
  `pii` let it pass; no model was called.
- T_OBSERVED: a call that went through: `injection` in observe mode would have blocked it,
  `pii` redacted two emails, and the output filter `guard` saw 12 chunks.
- T_FAILED_OPEN: a call whose output filter `guard` timed out (fail_open).
- T_AGENT_FILTERED: an agent-listener call whose `pii` filter on the weather agent blocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trace_seed import GPT, span_id

from proxy.filters import verdict as v
from proxy.telemetry.store import RequestRow, SpanRow, StoreBatch

# Distinct in the first 12 characters (the short id) and the last (span_id's).
T_BLOCKED = "f1171000" + "0" * 23 + "1"
T_OBSERVED = "f1172000" + "0" * 23 + "2"
T_FAILED_OPEN = "f1173000" + "0" * 23 + "3"
T_AGENT_FILTERED = "f1174000" + "0" * 23 + "4"
INJECTION_MESSAGE = "prompt injection detected (score 0.93 >= 0.50)"
PII_DIFF = "2 emails redacted"
GUARD_ERROR = "timeout after 1.0 s"
MS = 1_000_000


@dataclass(slots=True)
class FilterCall:
    """One filter call as the chain records it (the fields the span carries)."""

    filter_id: str
    kind: str
    decision: str
    latency_ms: float
    direction: str = "input"
    mode: str = "enforce"
    status: int | None = None
    message: str | None = None
    diff: str | None = None
    error: str | None = None
    target: str | None = None
    chunks: int | None = None
    chunks_modified: int | None = None
    applied: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def attributes(self) -> dict[str, Any]:
        applied = self.applied
        if applied is None:
            applied = self.mode == "enforce" and self.decision in ("modify", "block")
        out: dict[str, Any] = {
            v.ATTR_ID: self.filter_id,
            v.ATTR_KIND: self.kind,
            v.ATTR_DIRECTION: self.direction,
            v.ATTR_DECISION: self.decision,
            v.ATTR_MODE: self.mode,
            v.ATTR_APPLIED: applied,
            "filter.outcome": "error" if self.decision == "error" else "ok",
            "filter.duration_ms": self.latency_ms,
        }
        for key, value in (
            (v.ATTR_STATUS, self.status),
            (v.ATTR_MESSAGE, self.message),
            (v.ATTR_DIFF, self.diff),
            (v.ATTR_ERROR, self.error),
            (v.ATTR_TARGET, self.target),
            (v.ATTR_CHUNKS, self.chunks),
            (v.ATTR_CHUNKS_MODIFIED, self.chunks_modified),
        ):
            if value is not None:
                out[key] = value
        return out | self.extra


def filtered_call(
    trace_id: str,
    started_at: float,
    filters: list[FilterCall],
    *,
    status: int = 200,
    listener: str = "llm",
    model: str | None = GPT,
    error: str | None = None,
    llm_ms: float = 300.0,
) -> StoreBatch:
    """One call: plano(inbound), its input filters in order, the model call (unless the
    call was blocked before it), then its output filters."""
    start = int(started_at * 1e9)
    root = span_id(trace_id, 0)
    inputs = [f for f in filters if f.direction == "input"]
    outputs = [f for f in filters if f.direction == "output"]
    called = status < 400
    total = sum(f.latency_ms for f in inputs) + (llm_ms if called else 0) + 2
    row = RequestRow(
        trace_id=trace_id,
        started_at=started_at,
        span_id=root,
        listener=listener,
        api="openai_chat",
        model=model if called else None,
        requested_model=model,
        status=status,
        outcome="ok" if status < 400 else "error",
        error=error,
        latency_ms=total,
    )
    spans = [
        SpanRow(
            root,
            trace_id,
            "plano(inbound)",
            start,
            start + int(total * MS),
            kind="server",
            status_code="unset",
            attributes={"http.response.status_code": status, "plano.listener": listener},
        )
    ]
    at = start + MS
    n = 0

    def step(call: FilterCall, begin: int) -> SpanRow:
        nonlocal n
        n += 1
        failed = call.decision == "error"
        return SpanRow(
            span_id(trace_id, n),
            trace_id,
            "plano(filter)",
            begin,
            begin + int(call.latency_ms * MS),
            root,
            "client" if call.kind in ("http", "mcp") else "internal",
            "error" if failed else "unset",
            call.error if failed else None,
            call.attributes(),
        )

    for call in inputs:
        spans.append(step(call, at))
        at += int(call.latency_ms * MS)
    if called:
        n += 1
        spans.append(
            SpanRow(
                span_id(trace_id, n),
                trace_id,
                "plano(llm)",
                at,
                at + int(llm_ms * MS),
                root,
                "client",
                "unset",
                None,
                {"llm.model": model, "llm.outcome": "ok", "llm.duration_ms": llm_ms},
            )
        )
        for call in outputs:  # alongside the answer's chunks
            spans.append(step(call, at))
    return StoreBatch(requests=[row], spans=spans)


def filter_runs(now: float) -> list[StoreBatch]:
    return [
        filtered_call(
            T_BLOCKED,
            now - 40,
            [
                FilterCall("pii", "pii", "pass", 0.2),
                FilterCall(
                    "injection",
                    "prompt_injection",
                    "block",
                    1.5,
                    status=403,
                    message=INJECTION_MESSAGE,
                ),
            ],
            status=403,
            error=f"blocked by filter 'injection': {INJECTION_MESSAGE}",
        ),
        filtered_call(
            T_OBSERVED,
            now - 50,
            [
                FilterCall(
                    "injection",
                    "prompt_injection",
                    "block",
                    1.2,
                    mode="observe",
                    status=403,
                    message=INJECTION_MESSAGE,
                ),
                FilterCall("pii", "pii", "modify", 0.3, diff=PII_DIFF),
                FilterCall(
                    "guard",
                    "http",
                    "pass",
                    25.0,
                    direction="output",
                    chunks=12,
                    chunks_modified=0,
                ),
            ],
        ),
        filtered_call(
            T_FAILED_OPEN,
            now - 60,
            [
                FilterCall(
                    "guard",
                    "http",
                    "error",
                    1000.0,
                    direction="output",
                    error=GUARD_ERROR,
                    chunks=1,
                ),
            ],
        ),
        filtered_call(
            T_AGENT_FILTERED,
            now - 70,
            [
                FilterCall(
                    "pii",
                    "pii",
                    "block",
                    0.4,
                    status=400,
                    message="an api_key in the prompt",
                    target="weather_agent",
                ),
            ],
            status=400,
            listener="travel",
            model=None,
            error="blocked by filter 'pii': an api_key in the prompt",
        ),
    ]
