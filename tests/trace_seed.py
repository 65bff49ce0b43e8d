"""A small trace store as the gateway writes it, shared by the `plano traces` tests.

Six traces: a routed stream with a failed attempt, signals and captured messages; a routed
reasoning request; a 502 after a router fallback; an agent's run of three calls to two
models, one a stream that failed after its 200; an old request; and a trace with spans
only (its summary not written yet).
"""

from __future__ import annotations

import json
from pathlib import Path

from proxy.telemetry.store import (
    RequestRow,
    SignalRow,
    SpanEventRow,
    SpanRow,
    StoreBatch,
    TraceStore,
)

# Ids: a W3C-style one, two sharing the prefix "abcdef00" (ambiguous), one with spans only.
T_CODE = "4bf92f3577b34da6a3ce929d0e0e4736"
T_REASON = "0af7651916cd43dd8448eb211c80319c"
T_FAIL = "abcdef00" + "0" * 23 + "1"
T_AGENT = "abcdef00" + "0" * 23 + "2"
T_OLD = "1234567890abcdef1234567890abcdef"
T_SPANS_ONLY = "feedface" + "0" * 24
GPT, CLAUDE = "openai/gpt-4o-mini", "anthropic/claude-sonnet-4"
SCORES = {"code": 0.81, "reasoning": 0.42}
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Write a Rust function that parses a CSV line"},
]
ANSWER = [
    {
        "role": "assistant",
        "content": "Here it is.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "run_tests", "arguments": '{"crate": "csv"}'},
            }
        ],
    }
]


def span_id(trace_id: str, n: int) -> str:
    # The end of the id: the seeded ids that share a prefix (T_FAIL, T_AGENT) differ there.
    return f"{trace_id[-12:]}{n:04x}"


def traced(
    trace_id: str,
    started_at: float,
    *,
    route: str | None = None,
    scores: dict[str, float] | None = None,
    fallback: str | None = None,
    failed_attempts: int = 0,
    call: int = 0,
    **fields,
) -> StoreBatch:
    """One request (call `call` of its trace) as the gateway stores it: summary, inbound,
    routing and llm spans. Each call's span ids are its own."""
    fields.setdefault("outcome", _outcome(fields.get("status"), fields.get("error")))
    base = 16 * call
    row = RequestRow(
        trace_id=trace_id,
        started_at=started_at,
        span_id=span_id(trace_id, base),
        route=route,
        **fields,
    )
    start = int(started_at * 1e9)
    end = start + int((row.latency_ms or 10) * 1e6)
    root = span_id(trace_id, base)
    spans = [
        SpanRow(
            root,
            trace_id,
            "plano(inbound)",
            start,
            end,
            kind="server",
            status_code="error" if (row.status or 0) >= 500 else "unset",
            status_message=row.error,
            attributes={
                "http.response.status_code": row.status,
                "url.path": "/v1/chat/completions",
                "plano.api": row.api,
                "llm.model": row.requested_model,
                "route.selected_model": row.model,
                "llm.provider": row.provider,
            },
        )
    ]
    events = []
    routing_end = start + 12_000_000
    if row.router_backend:
        attributes = {
            "routing.determination_ms": 12.0,
            "route.name": route or "none",
            "route.models": [row.model],
            "route.selected_model": row.model,
            "router.backend": row.router_backend,
            "router.cached": False,
            "router.pinned": False,
        }
        if scores:
            attributes["router.scores"] = json.dumps(scores)
        if fallback:
            attributes["router.fallback"] = fallback
        spans.append(
            SpanRow(
                span_id(trace_id, base + 1),
                trace_id,
                "plano(routing)",
                start + 1_000_000,
                routing_end,
                root,
                "internal",
                "unset",
                None,
                attributes,
            )
        )
    attempt_start = routing_end
    for n in range(failed_attempts):
        attempt_end = attempt_start + 50_000_000
        spans.append(
            SpanRow(
                span_id(trace_id, base + 2 + n),
                trace_id,
                "plano(llm)",
                attempt_start,
                attempt_end,
                root,
                "client",
                "error",
                "HTTP 503",
                {"llm.model": row.model, "llm.outcome": "HTTP 503"},
            )
        )
        attempt_start = attempt_end
    answer = span_id(trace_id, base + 2 + failed_attempts)
    spans.append(
        SpanRow(
            answer,
            trace_id,
            "plano(llm)",
            attempt_start,
            end - 1_000_000,
            root,
            "client",
            "error" if row.outcome == "stream_error" else "unset",
            row.error if row.outcome == "stream_error" else None,
            {
                "llm.model": row.model,
                "llm.provider": row.provider,
                "llm.outcome": "ok",
                "llm.usage.prompt_tokens": row.input_tokens,
                "llm.usage.completion_tokens": row.output_tokens,
                "llm.usage.cost_usd": row.cost_usd,
                "llm.usage.prompt_cost_usd": 0.0001,
                "llm.usage.completion_cost_usd": 0.0003,
            },
        )
    )
    if row.ttft_ms is not None:
        events.append(SpanEventRow(answer, trace_id, "first_token", start + int(row.ttft_ms * 1e6)))
    return StoreBatch(requests=[row], spans=spans, events=events)


def _outcome(status: int | None, error: str | None) -> str:
    """What the gateway records (proxy.gateway.exchange.Exchange.outcome)."""
    if status == 499:
        return "client_disconnect"
    if status is None or not 200 <= status < 400:
        return "error"
    return "stream_error" if error else "ok"


def agent_run(now: float, trace_id: str = T_AGENT, start: float | None = None) -> list[StoreBatch]:
    """T_AGENT: an agent's run, three calls under one traceparent (as its LLM calls are):
    Claude plans, GPT's stream fails after its 200, Claude answers. 1.80 s in all."""
    common = {"api": "anthropic_messages", "listener": "agents", "session": "s-1"}
    start = now - 7200 if start is None else start
    return [
        traced(
            trace_id,
            start,
            route="code",
            call=0,
            router_backend="embedded",
            model=CLAUDE,
            provider="anthropic",
            status=200,
            latency_ms=900.0,
            ttft_ms=300.0,
            input_tokens=40,
            output_tokens=60,
            cost_usd=0.001,
            **common,
        ),
        traced(
            trace_id,
            start + 1.0,
            call=1,
            model=GPT,
            provider="openai",
            status=200,
            error="upstream reset the stream",
            latency_ms=300.0,
            ttft_ms=90.0,
            input_tokens=30,
            output_tokens=5,
            cost_usd=0.0001,
            stream=True,
            **common,
        ),
        traced(
            trace_id,
            start + 1.4,
            route="code",
            call=2,
            router_backend="embedded",
            model=CLAUDE,
            provider="anthropic",
            status=200,
            latency_ms=400.0,
            ttft_ms=150.0,
            input_tokens=70,
            output_tokens=20,
            cost_usd=0.0006,
            **common,
        ),
    ]


def seed(path: Path, now: float) -> None:
    code = traced(
        T_CODE,
        now - 10,
        route="code",
        scores=SCORES,
        failed_attempts=1,
        listener="model",
        api="openai_chat",
        path="/v1/chat/completions",
        router_backend="embedded",
        requested_model="auto",
        model=GPT,
        provider="openai",
        status=200,
        latency_ms=850.0,
        ttft_ms=120.0,
        input_tokens=100,
        output_tokens=50,
        cost_usd=0.0004,
        stream=True,
        signal_quality="poor",
        signal_score=35,
        signal_count=2,
        request_messages=MESSAGES,
        response_messages=ANSWER,
    )
    code.signals = [
        SignalRow(T_CODE, "correction", "misalignment", 1, 0.9, "no, I meant Rust"),
        SignalRow(T_CODE, "gratitude", "satisfaction", 3, 0.7, "thanks"),
    ]
    code.events.append(
        SpanEventRow(
            span_id(T_CODE, 0),
            T_CODE,
            "signal.correction",
            int((now - 9) * 1e9),
            {"type": "correction"},
        )
    )
    batches = [
        code,
        traced(
            T_REASON,
            now - 60,
            route="reasoning",
            scores={"reasoning": 0.9, "code": 0.1},
            api="openai_chat",
            listener="model",
            router_backend="embedded",
            model=CLAUDE,
            provider="anthropic",
            status=200,
            latency_ms=2400.0,
            ttft_ms=400.0,
            input_tokens=500,
            output_tokens=800,
            cost_usd=0.0135,
        ),
        traced(
            T_FAIL,
            now - 120,
            route=None,
            fallback="timeout",
            api="openai_chat",
            listener="model",
            router_backend="embedded",
            routing_fallback="timeout",
            model=GPT,
            provider="openai",
            status=502,
            error="upstream timeout",
            latency_ms=30000.0,
        ),
        *agent_run(now),
        traced(
            T_OLD,
            now - 3 * 86_400,
            api="openai_chat",
            listener="model",
            model=GPT,
            provider="openai",
            status=429,
            latency_ms=5.0,
        ),
        StoreBatch(
            spans=[
                SpanRow(
                    span_id(T_SPANS_ONLY, 0),
                    T_SPANS_ONLY,
                    "agent.plan",
                    int((now - 5) * 1e9),
                    None,
                    attributes={"agent.step": "plan"},
                )
            ]
        ),
    ]
    with TraceStore.open(path) as store:
        for batch in batches:
            store.write(batch)


# Two calls of an agent listener, written by chain_runs (not by seed, whose traces the
# list tests and snapshots count): the orchestrator chose weather then flights; and one
# where it timed out and the default agent served.
T_CHAIN = "c4a10000" + "0" * 23 + "1"
T_CHAIN_FALLBACK = "c4a10000" + "0" * 23 + "2"
WEATHER_HANDOFF = "Rome: sunny, 24 °C all week."


def chain_call(
    trace_id: str,
    started_at: float,
    agents: list[tuple[str, float, str]],
    *,
    fallback: str | None = None,
    handoffs: dict[str, str] | None = None,
) -> StoreBatch:
    """One call of the agent listener "travel": its plano(inbound), plano(orchestrator)
    and a plano(agent) span for each (agent id, latency ms, outcome), as the gateway
    writes them (proxy.telemetry.spans)."""
    ms = 1_000_000
    start = int(started_at * 1e9)
    root = span_id(trace_id, 0)
    failed = next((a for a in agents if a[2] != "ok"), None)
    status = 502 if failed else 200
    orchestrator_ms = 40.0
    total = orchestrator_ms + sum(latency for _, latency, _ in agents) + 5
    row = RequestRow(
        trace_id=trace_id,
        started_at=started_at,
        span_id=root,
        listener="travel",
        api="openai_chat",
        status=status,
        outcome="error" if failed else "ok",
        error=f"agent '{failed[0]}' answered {failed[2]}" if failed else None,
        latency_ms=total,
    )
    spans = [
        SpanRow(
            root,
            trace_id,
            "plano(inbound)",
            start,
            start + int(total * ms),
            kind="server",
            status_code="error" if failed else "unset",
            attributes={"http.response.status_code": status, "plano.listener": "travel"},
        )
    ]
    orchestrator = {
        "orchestrator.backend": "plano_orchestrator",
        "orchestrator.outcome": "fallback" if fallback else "ok",
        "orchestrator.duration_ms": orchestrator_ms,
        "orchestrator.selection": "fallback" if fallback else "routed",
        "orchestrator.agents": [agent for agent, _, _ in agents],
        "orchestrator.cached": False,
        "orchestrator.escalated": False,
        "routing.determination_ms": orchestrator_ms - 2,
    }
    if fallback:
        orchestrator["orchestrator.detail"] = fallback
    at = start + ms
    spans.append(
        SpanRow(
            span_id(trace_id, 1),
            trace_id,
            "plano(orchestrator)",
            at,
            at + int(orchestrator_ms * ms),
            root,
            "internal",
            "unset",
            None,
            orchestrator,
        )
    )
    at += int(orchestrator_ms * ms)
    for position, (agent, latency, outcome) in enumerate(agents, 1):
        attributes = {
            "agent.id": agent,
            "agent.outcome": outcome,
            "agent.duration_ms": latency,
            "agent.position": position,
            "agent.chain_length": len(agents),
        }
        if agent in (handoffs or {}):
            attributes["agent.handoff"] = (handoffs or {})[agent]
        spans.append(
            SpanRow(
                span_id(trace_id, 1 + position),
                trace_id,
                "plano(agent)",
                at,
                at + int(latency * ms),
                root,
                "client",
                "unset" if outcome == "ok" else "error",
                None if outcome == "ok" else f"agent '{agent}' answered {outcome}",
                attributes,
            )
        )
        at += int(latency * ms)
    return StoreBatch(requests=[row], spans=spans)


def chain_runs(now: float) -> list[StoreBatch]:
    return [
        chain_call(
            T_CHAIN,
            now - 20,
            [("weather_agent", 320.0, "ok"), ("flight_agent", 1250.0, "ok")],
            handoffs={"weather_agent": WEATHER_HANDOFF},
        ),
        chain_call(
            T_CHAIN_FALLBACK, now - 30, [("flight_agent", 90.0, "HTTP 500")], fallback="timeout"
        ),
    ]
