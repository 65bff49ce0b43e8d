"""The routing decision for one request: affinity, cache, backend, fallback, ranking.

A router that fails never fails the request: the request gets its default model and the
decision records why (`fallback`), where traces, metrics and the response headers see it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from proxy.pricing import Price
from proxy.routing.affinity import DecisionCache
from proxy.routing.backends.base import RouterAnswer, RouterBackend, RouterUnavailable
from proxy.routing.conversation import Turn, cache_key
from proxy.routing.latency import LatencyTracker
from proxy.routing.pins import MemoryPins, Pin, PinStore, pin_key, routes_digest
from proxy.routing.routes import Route, route_key
from proxy.routing.selection import rank_models

log = logging.getLogger("plano.routing")


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    route: str | None
    models: tuple[str, ...]  # ranked by the route's selection policy; empty: no route
    backend: str
    scores: Mapping[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    fallback: str | None = None  # set when the router failed and the default model serves
    cached: bool = False
    pinned: bool = False  # decided earlier for this X-Model-Affinity session
    escalated: bool = False
    # Decided, but not by the router meant to (a hybrid's LLM failed): served, not remembered.
    degraded: bool = False
    detail: str | None = None
    # Every route the router named, in its order (an orchestrator names a sequence of
    # agents); the one route otherwise.
    named: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {
            "route": self.route,
            "models": list(self.models),
            "backend": self.backend,
            "scores": {name: round(score, 4) for name, score in self.scores.items()},
            "latency_ms": round(self.latency_ms, 3),
            "fallback": self.fallback,
            "cached": self.cached,
            "pinned": self.pinned,
            "escalated": self.escalated,
            "detail": self.detail,
        }


def decision_payload(decision: RoutingDecision | None, default_model: str | None) -> dict:
    """Upstream's shape ({models, route}) plus `model` (what would serve the request) and how
    it was decided: what `/routing/v1/*` and `plano route --json` print."""
    if decision is not None and decision.models:
        models, model = list(decision.models), decision.models[0]
    else:
        models, model = ["none"], default_model or "none"  # "none": upstream's no-match
    payload = {
        "models": models,
        "route": decision.route if decision is not None else None,
        "model": model,
    }
    if decision is not None:
        details = decision.as_json()
        del details["route"], details["models"]
        payload.update(details)
    return payload


@dataclass(slots=True)
class RoutingStats:
    decisions: Counter = field(default_factory=Counter)  # (route or "none", backend)
    fallbacks: Counter = field(default_factory=Counter)  # backend
    cache_hits: int = 0
    pinned: int = 0


class RoutingService:
    def __init__(
        self,
        backend: RouterBackend,
        routes: Sequence[Route] = (),
        *,
        cache_size: int = 4096,
        session_ttl_s: float = 600,
        session_max_entries: int = 10000,
        latencies: LatencyTracker | None = None,
        prices: Mapping[str, Price] | None = None,
        pins: PinStore | None = None,
    ):
        """`pins`: where X-Model-Affinity pins live (routing.session_cache); None keeps
        them in this process."""
        self.backend = backend
        self.prices = prices  # the config's pricing, over the built-in table
        self.routes = tuple(routes)
        self._routes_id = route_key(self.routes)
        self._routes_digest = routes_digest(self._routes_id)
        self.cache: DecisionCache[RoutingDecision] = DecisionCache(cache_size)
        self.pins: PinStore = pins or MemoryPins(session_ttl_s, session_max_entries)
        self.latencies = latencies or LatencyTracker()
        self.stats = RoutingStats()
        self.notes: list[str] = []  # what start-up decided, for the banner

    async def start(self) -> None:
        if not self.routes:
            # Only requests that bring their own routes can need the router: load it then,
            # rather than make every start of a config without routes pay for it.
            return
        await self.backend.start()
        self.backend.prepare(self.routes)

    async def close(self) -> None:
        await self.backend.close()

    async def decide(
        self,
        turns: Sequence[Turn],
        routes: Sequence[Route] | None = None,
        *,
        session: str | None = None,
        tenant: str | None = None,
    ) -> RoutingDecision:
        """`session`: the X-Model-Affinity header; `tenant`: the session cache's
        tenant_header, which scopes the session's pin."""
        own_routes = routes is None
        routes = self.routes if routes is None else tuple(routes)
        started = time.perf_counter()
        if not routes or not turns:
            return RoutingDecision(None, (), self.backend.name, detail="nothing to route")
        routes_id = self._routes_id if own_routes else route_key(routes)
        # A pin holds for the route set it was made under: a request that brings other
        # routes is decided afresh, not given a route it did not offer. Those get pins of
        # their own, beside the session's pin for the configured routes (upstream's key).
        # The digest is for pins only: a request without a session does not hash its routes.
        pinned_as = digest = None
        if session:
            digest = self._routes_digest if own_routes else routes_digest(routes_id)
            pinned_as = pin_key(session, tenant) + ("" if own_routes else f"#routes:{digest}")
            pinned = await self.pins.get(pinned_as)
            if pinned is not None and pinned.routes == digest:
                self.stats.pinned += 1
                return self._ranked(_from_pin(pinned, _ms(started)), routes)
        key = (cache_key(turns), routes_id)
        cached = self.cache.get(key)
        if cached is not None:
            self.stats.cache_hits += 1
            decision = replace(cached, cached=True, latency_ms=_ms(started))
        else:
            decision = await self._ask(turns, routes, started)
            if decision.fallback is None and not decision.degraded:
                self.cache.put(key, decision)
        if (
            pinned_as is not None
            and digest is not None
            and decision.route is not None
            and decision.fallback is None
            and not decision.degraded
        ):
            pin = Pin(decision.route, digest, decision.backend, decision.named, decision.scores)
            await self.pins.put(pinned_as, pin)
        return self._ranked(decision, routes)

    def _ranked(self, decision: RoutingDecision, routes: Sequence[Route]) -> RoutingDecision:
        """The route's models in policy order now: `fastest` follows latencies as they move."""
        route = next((r for r in routes if r.name == decision.route), None)
        if route is None:
            return decision
        return replace(
            decision,
            models=tuple(rank_models(route.models, route.prefer, self.latencies, self.prices)),
        )

    async def _ask(
        self, turns: Sequence[Turn], routes: Sequence[Route], started: float
    ) -> RoutingDecision:
        try:
            answer: RouterAnswer = await self.backend.decide(turns, routes)
        except RouterUnavailable as exc:
            return self._fallback(str(exc), started)
        except Exception as exc:  # a router bug must not become a 500
            log.exception("router backend %s failed", self.backend.name)
            return self._fallback(f"{type(exc).__name__}: {exc}", started)
        route = next((r for r in routes if r.name == answer.route), None)
        models = route.models if route else ()  # ranked by _ranked on the way out
        self.stats.decisions[(answer.route or "none", answer.backend)] += 1
        return RoutingDecision(
            route=answer.route,
            models=models,
            backend=answer.backend,
            scores=answer.scores,
            latency_ms=_ms(started),
            escalated=answer.escalated,
            degraded=answer.degraded,
            detail=answer.detail,
            named=answer.named or ((answer.route,) if answer.route else ()),
        )

    def _fallback(self, reason: str, started: float) -> RoutingDecision:
        self.stats.fallbacks[self.backend.name] += 1
        log.warning("router failed, serving the default model: %s", reason)
        return RoutingDecision(
            None, (), self.backend.name, latency_ms=_ms(started), fallback=reason
        )


def _from_pin(pin: Pin, latency_ms: float) -> RoutingDecision:
    """A pinned decision; its models are ranked from the route set as it is now."""
    return RoutingDecision(
        pin.route,
        (),
        pin.backend,
        scores=pin.scores,
        latency_ms=latency_ms,
        pinned=True,
        named=pin.named,
    )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
