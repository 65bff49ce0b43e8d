"""What `show` reads out of one stored trace: the span tree, its calls (each with its
spans, routing decision, agent chain and LLM attempts) and the captured messages.

Shared by the text view, the JSON and the interactive viewer, so all say the same thing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.telemetry.store import RequestRow, SpanEventRow, SpanRow, TraceDetail

INBOUND, ROUTING, LLM = "plano(inbound)", "plano(routing)", "plano(llm)"
ORCHESTRATOR, AGENT = "plano(orchestrator)", "plano(agent)"


@dataclass(slots=True)
class PlacedSpan:
    span: SpanRow
    depth: int
    last: bool  # the last child of its parent: drawn with └─ rather than ├─
    ancestors_last: tuple[bool, ...]  # `last` of each ancestor below the root, for │ rails
    offset_ms: float  # from the trace's first start
    duration_ms: float | None  # None while the span has not ended
    events: list[SpanEventRow]


def span_tree(detail: TraceDetail) -> list[PlacedSpan]:
    """Spans depth first, children by start time. A span whose parent is not stored (the
    client's, say) is a root."""
    spans = detail.spans
    if not spans:
        return []
    origin = min(s.start_ns for s in spans)
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRow]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: (s.start_ns, s.span_id))
    events: dict[str, list[SpanEventRow]] = {}
    for event in detail.events:
        events.setdefault(event.span_id, []).append(event)

    placed: list[PlacedSpan] = []
    seen: set[str] = set()

    def visit(span: SpanRow, depth: int, last: bool, rails: tuple[bool, ...]) -> None:
        if span.span_id in seen:  # a parent loop in bad agent data: draw each span once
            return
        seen.add(span.span_id)
        end = span.end_ns
        placed.append(
            PlacedSpan(
                span=span,
                depth=depth,
                last=last,
                ancestors_last=rails,
                offset_ms=(span.start_ns - origin) / 1e6,
                duration_ms=None if end is None else (end - span.start_ns) / 1e6,
                events=events.get(span.span_id, []),
            )
        )
        kids = children.get(span.span_id, [])
        below = (*rails, last) if depth > 0 else rails
        for i, kid in enumerate(kids):
            visit(kid, depth + 1, i == len(kids) - 1, below)

    roots = children.get(None, [])
    for i, root in enumerate(roots):
        visit(root, 0, i == len(roots) - 1, ())
    # Spans only reachable through a loop are still shown, as roots.
    for span in spans:
        if span.span_id not in seen:
            visit(span, 0, True, ())
    return placed


def trace_span_ms(placed: list[PlacedSpan]) -> float:
    """From the first start to the last end: the waterfall's full width."""
    ends = [p.offset_ms + p.duration_ms for p in placed if p.duration_ms is not None]
    return max([*ends, *(p.offset_ms for p in placed), 0.0])


@dataclass(slots=True)
class Call:
    """One call of the trace (a request through the gateway), numbered from 1 in start
    order, with its spans: its plano(inbound) span and every span under it."""

    number: int
    row: RequestRow
    spans: list[SpanRow]


def trace_calls(detail: TraceDetail) -> list[Call]:
    """The trace's calls, oldest first. A call whose root span is not stored gets the
    trace's spans when it is the only call (a store written before calls had keys),
    none otherwise."""
    children: dict[str | None, list[SpanRow]] = {}
    for span in detail.spans:
        children.setdefault(span.parent_id, []).append(span)
    by_id = {span.span_id: span for span in detail.spans}
    calls = []
    for number, row in enumerate(detail.calls, 1):
        root = by_id.get(row.span_id or "")
        if root is None:
            spans = list(detail.spans) if len(detail.calls) == 1 else []
        else:
            spans = _subtree(root, children)
        calls.append(Call(number, row, spans))
    return calls


def _subtree(root: SpanRow, children: dict[str | None, list[SpanRow]]) -> list[SpanRow]:
    found, queue, seen = [], [root], set()
    while queue:
        span = queue.pop()
        if span.span_id in seen:  # a parent loop in bad agent data
            continue
        seen.add(span.span_id)
        found.append(span)
        queue.extend(children.get(span.span_id, ()))
    found.sort(key=lambda s: (s.start_ns, s.span_id))
    return found


def routing_decision(spans: list[SpanRow], row: RequestRow | None) -> dict[str, Any] | None:
    """A call's routing decision, from its plano(routing) span, else from its summary
    row; None when the call was not routed."""
    span = next((s for s in spans if s.name == ROUTING), None)
    if span is None and (row is None or (row.router_backend is None and row.route is None)):
        return None
    attrs = span.attributes if span is not None else {}
    route = attrs.get("route.name", row.route if row is not None else None)
    models = attrs.get("route.models")
    return {
        # The span says "none" when no route matched; JSON says null, as the summary does.
        "route": None if route == "none" else route,
        "backend": attrs.get("router.backend", row.router_backend if row else None),
        "selected_model": attrs.get("route.selected_model"),
        "models": list(models) if isinstance(models, list | tuple) else models,
        "scores": _scores(attrs.get("router.scores")),
        "fallback": attrs.get("router.fallback", row.routing_fallback if row else None),
        "determination_ms": attrs.get("routing.determination_ms"),
        "cached": attrs.get("router.cached"),
        "pinned": attrs.get("router.pinned"),
        "escalated": attrs.get("router.escalated"),
    }


def _scores(raw: Any) -> dict[str, float] | None:
    """route -> score, stored as one JSON string attribute; highest first."""
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(raw, dict):
        return None
    pairs = [(str(k), v) for k, v in raw.items() if isinstance(v, int | float)]
    return dict(sorted(pairs, key=lambda kv: -kv[1]))


@dataclass(slots=True)
class Orchestration:
    """An agent listener's choice of agents, from its plano(orchestrator) span."""

    backend: str | None
    selection: str | None  # routed | default | fallback
    agents: list[str]  # in the order they ran
    fallback: str | None  # why the default agent served instead, when the orchestrator failed
    latency_ms: float | None


@dataclass(slots=True)
class AgentStep:
    """One agent called, from its plano(agent) span. `handoff` is the answer it passed to
    the next agent (captured only with capture_messages); the last agent has none, its
    answer went to the client."""

    position: int
    agent_id: str
    outcome: str
    failed: bool
    detail: str | None
    latency_ms: float | None
    handoff: str | None
    last: bool


@dataclass(slots=True)
class AgentChain:
    """A call of an agent listener: the orchestrator's decision (None when the listener
    has one agent and asks no orchestrator) and each agent in the order it ran."""

    orchestration: Orchestration | None
    agents: list[AgentStep]


def agent_chain(spans: list[SpanRow]) -> AgentChain | None:
    """The chain among a call's spans; None when the call ran no agent."""
    deciding = next((s for s in spans if s.name == ORCHESTRATOR), None)
    ran = [s for s in spans if s.name == AGENT]
    if deciding is None and not ran:
        return None
    orchestration = None
    if deciding is not None:
        attrs = deciding.attributes
        selection = _str(attrs.get("orchestrator.selection"))
        agents = attrs.get("orchestrator.agents")
        orchestration = Orchestration(
            backend=_str(attrs.get("orchestrator.backend")),
            selection=selection,
            agents=[str(a) for a in agents] if isinstance(agents, list | tuple) else [],
            fallback=_str(attrs.get("orchestrator.detail")) if selection == "fallback" else None,
            latency_ms=_span_ms(deciding, "orchestrator.duration_ms"),
        )
    # By the position the gateway numbered; start time where an agent's data lacks it.
    ran.sort(key=lambda s: (_int(s.attributes.get("agent.position")) or 0, s.start_ns))
    steps = []
    for i, span in enumerate(ran, 1):
        attrs = span.attributes
        errored = span.status_code == "error"
        outcome = _str(attrs.get("agent.outcome")) or ("error" if errored else "ok")
        steps.append(
            AgentStep(
                position=_int(attrs.get("agent.position")) or i,
                agent_id=_str(attrs.get("agent.id")) or "?",
                outcome=outcome,
                failed=outcome != "ok" or errored,
                detail=_str(attrs.get("agent.detail")) or span.status_message,
                latency_ms=_span_ms(span, "agent.duration_ms"),
                handoff=_str(attrs.get("agent.handoff")),
                last=i == len(ran),
            )
        )
    return AgentChain(orchestration, steps)


def agent_chains(detail: TraceDetail, calls: list[Call]) -> list[tuple[Call | None, AgentChain]]:
    """Each agent-listener call's chain, in call order. A trace whose calls are not stored
    yet still shows the chain its spans recorded (with no call)."""
    if not calls:
        chain = agent_chain(detail.spans)
        return [] if chain is None else [(None, chain)]
    found: list[tuple[Call | None, AgentChain]] = []
    for call in calls:
        chain = agent_chain(call.spans)
        if chain is not None:
            found.append((call, chain))
    return found


def _span_ms(span: SpanRow, key: str) -> float | None:
    recorded = _number(span.attributes.get(key))
    if recorded is not None:
        return recorded
    return None if span.end_ns is None else (span.end_ns - span.start_ns) / 1e6


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def llm_attempts(spans: list[SpanRow]) -> list[SpanRow]:
    return [s for s in spans if s.name == LLM]


@dataclass(slots=True)
class AttemptUsage:
    """One call to a model, as its plano(llm) span records it: retries and failovers each
    have their own. A cost of None means no price was known, which is not the same as $0."""

    span: SpanRow
    failed: bool
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    input_cost_usd: float | None
    output_cost_usd: float | None


def attempt_usage(spans: list[SpanRow]) -> list[AttemptUsage]:
    """Each call to a model among `spans` (a call's, or the whole trace's)."""
    out = []
    for span in llm_attempts(spans):
        attrs = span.attributes
        out.append(
            AttemptUsage(
                span=span,
                failed=attrs.get("llm.outcome", "ok") != "ok",
                input_tokens=_int(attrs.get("llm.usage.prompt_tokens")),
                output_tokens=_int(attrs.get("llm.usage.completion_tokens")),
                cached_tokens=_int(attrs.get("llm.usage.cached_input_tokens")),
                reasoning_tokens=_int(attrs.get("llm.usage.reasoning_tokens")),
                cost_usd=_number(attrs.get("llm.usage.cost_usd")),
                input_cost_usd=_number(attrs.get("llm.usage.prompt_cost_usd")),
                output_cost_usd=_number(attrs.get("llm.usage.completion_cost_usd")),
            )
        )
    return out


def _number(value: Any) -> float | None:
    # Agents' spans can carry anything under these names: a bool or a string is no price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _int(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def message_list(messages: Any) -> list[dict[str, Any]]:
    """Captured messages as a list of dicts, whatever shape the store kept them in."""
    if messages is None:
        return []
    if not isinstance(messages, list):
        messages = [messages]
    return [m if isinstance(m, dict) else {"role": "?", "content": m} for m in messages]


def tool_call_parts(call: Any) -> tuple[str, str]:
    """An OpenAI-style tool call's function name and its arguments as the model wrote them
    (a JSON string, normally)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        function = {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return str(function.get("name") or "?"), arguments
