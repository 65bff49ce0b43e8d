"""Which agents take a request, and in what order.

The agents are routes; the routing service asks its backend (an orchestrator LLM with
upstream's orchestrator-v1 prompt, the embedded CPU router, or the hybrid of both). Its
answer is read as upstream reads it: unknown names are dropped and an empty list means
the `default: true` agent, else the first. Unlike upstream, an orchestrator that fails
(an error, a timeout, an answer that does not parse) is not a failed request: the
default agent serves, and the plan says why.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from proxy.canonical import Message
from proxy.config.model import Listener
from proxy.gateway.exchange import Exchange, Step, StepKind
from proxy.routing.backends.base import CALL_HEADERS
from proxy.routing.conversation import turns_from_messages
from proxy.routing.service import RoutingDecision, RoutingService
from proxy.telemetry.tracecontext import new_span_id

SINGLE = "single"  # the backend name of a listener with one agent: no one is asked


class Selection(enum.StrEnum):
    """How the agents were chosen: the orchestrator named them, named none (the default
    agent serves), or failed (the default agent serves, `fallback` says why)."""

    ROUTED = "routed"
    DEFAULT = "default"
    FALLBACK = "fallback"
    SINGLE = SINGLE


@dataclass(frozen=True, slots=True)
class AgentPlan:
    agents: tuple[str, ...]  # ids, in the order they run; never empty
    selection: Selection
    backend: str
    latency_ms: float = 0.0
    fallback: str | None = None
    detail: str | None = None
    cached: bool = False
    escalated: bool = False
    scores: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "agents": list(self.agents),
            "selection": self.selection.value,
            "backend": self.backend,
            "latency_ms": round(self.latency_ms, 3),
            "fallback": self.fallback,
            "cached": self.cached,
            "escalated": self.escalated,
            "scores": {name: round(score, 4) for name, score in self.scores.items()},
            "detail": self.detail,
        }


class Orchestrator:
    """One per agent listener."""

    def __init__(self, listener: Listener, service: RoutingService | None):
        self.listener = listener
        self.ids = tuple(agent.id for agent in listener.agents)
        self.default = next((a.id for a in listener.agents if a.default), self.ids[0])
        # One agent needs no decision: no orchestrator is built or called.
        self.service = service if len(self.ids) > 1 else None

    @property
    def backend_name(self) -> str:
        return self.service.backend.name if self.service is not None else SINGLE

    def describe(self) -> str:
        if self.service is None:
            return f"none needed: one agent ({self.ids[0]})"
        return self.service.backend.describe()

    async def plan(
        self, messages: Sequence[Message], exchange: Exchange | None = None
    ) -> AgentPlan:
        """The agents for this conversation; with an exchange, recorded as its step."""
        if self.service is None:
            return AgentPlan((self.default,), Selection.SINGLE, SINGLE)
        step = Step(StepKind.ORCHESTRATOR, self.service.backend.name, new_span_id(), 0.0)
        step.started = time.perf_counter()
        headers = {}
        if exchange is not None:
            headers["x-request-id"] = exchange.request_id
            if exchange.trace is not None:
                # The orchestrator LLM's own spans hang off plano(orchestrator).
                headers["traceparent"] = exchange.trace.traceparent(step.span_id)
        token = CALL_HEADERS.set(headers)
        try:
            decision = await self.service.decide(turns_from_messages(messages))
        finally:
            CALL_HEADERS.reset(token)
        plan = self._plan(decision)
        if exchange is not None:
            step.name = plan.backend
            step.end("fallback" if plan.selection == Selection.FALLBACK else "ok", plan.fallback)
            step.attributes = _step_attributes(plan)
            exchange.steps.append(step)
        return plan

    def _plan(self, decision: RoutingDecision) -> AgentPlan:
        known = set(self.ids)
        agents: list[str] = []
        for name in decision.named:
            if name in known and name not in agents:  # a repeat would run an agent twice
                agents.append(name)
        if decision.fallback is not None:
            selection = Selection.FALLBACK
        elif agents:
            selection = Selection.ROUTED
        else:
            selection = Selection.DEFAULT
        return AgentPlan(
            agents=tuple(agents) or (self.default,),
            selection=selection,
            backend=decision.backend,
            latency_ms=decision.latency_ms,
            fallback=decision.fallback,
            detail=decision.detail,
            cached=decision.cached,
            escalated=decision.escalated,
            scores=dict(decision.scores),
        )


def _step_attributes(plan: AgentPlan) -> dict:
    out: dict = {
        "orchestrator.selection": plan.selection.value,
        "orchestrator.agents": list(plan.agents),
        "orchestrator.cached": plan.cached,
        "orchestrator.escalated": plan.escalated,
        "routing.determination_ms": plan.latency_ms,
    }
    if plan.scores:
        out["orchestrator.scores"] = orjson.dumps(
            {name: round(score, 4) for name, score in plan.scores.items()}
        ).decode()
    if plan.detail:
        out["orchestrator.reason"] = plan.detail[:512]
    return out
