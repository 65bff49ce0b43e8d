"""`plano route --learn`: refine each route's prototypes from the prompts traffic brought.

The trace store keeps sampled requests' messages. Each stored prompt becomes a learned
example of a route when either
- a router LLM decided it (an `ollama` or `openai-compatible` decision, alone or escalated
  by `hybrid`, that did not fall back): its route is the label; or
- the embedded router, scoring it against the config's routes, is confident: its best route
  clears the threshold by SELF_MIN_SCORE and the runner-up by SELF_MIN_MARGIN (self-training:
  only prompts far from every boundary, so a wrong guess is rare and a drift cannot feed on
  itself in one pass, since every prompt is scored against the routes as written).
Prompts that fit no route teach nothing: the background (background.py) already stands for
them. The newest prompts win when a route has more than MAX_PER_ROUTE.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from proxy.routing.embedded.router import EmbeddedRouter, RouteText
from proxy.routing.learned import MAX_EXAMPLE_CHARS, LearnedRoute, LearnedRoutes

LLM_BACKENDS = frozenset({"ollama", "openai-compatible"})
SELF_MIN_SCORE = 1.0  # calibrated units above the threshold (router.py's scale)
SELF_MIN_MARGIN = 1.0  # and ahead of the runner-up, on the same scale
MAX_PER_ROUTE = 48
MIN_WORDS = 2  # "ok", "thanks": too little to say what a route is about
DEFAULT_LIMIT = 5000


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored prompt: its latest user turn, and the LLM router's label if it gave one."""

    text: str
    started_at: float
    llm_route: str | None = None  # set only when a router LLM made the decision


def read_samples(store: Path, *, since: float = 0.0, limit: int = DEFAULT_LIMIT) -> list[Sample]:
    """The newest `limit` stored prompts since `since` (epoch seconds), newest first.

    Opens the store read-only: learning never writes to it, and the gateway may be running.
    """
    from proxy.telemetry.store import TraceStore, TraceStoreError

    try:
        trace_store = TraceStore.open(store, read_only=True)
    except TraceStoreError as exc:
        raise OSError(str(exc)) from None
    try:
        rows = trace_store.recent_prompts(since=since, limit=limit)
    except sqlite3.Error as exc:
        raise OSError(f"{store}: not a Plano trace store ({exc})") from None
    finally:
        trace_store.close()
    samples = []
    for messages, route, backend, fallback, started_at in rows:
        text = _latest_user_text(messages)
        if text is None:
            continue
        decided_by_llm = backend in LLM_BACKENDS and not fallback
        samples.append(Sample(text, started_at, route if decided_by_llm else None))
    return samples


def _latest_user_text(raw: str | bytes | None) -> str | None:
    try:
        messages = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and len(content.split()) >= MIN_WORDS:
                return " ".join(content.split())[:MAX_EXAMPLE_CHARS]
            return None
    return None


@dataclass(frozen=True, slots=True)
class Assignment:
    text: str
    route: str
    source: str  # "llm" or "self"


def assign(
    router: EmbeddedRouter,
    routes: Sequence[RouteText],
    samples: Sequence[Sample],
    *,
    threshold: float | None = None,
) -> Iterator[Assignment]:
    """Each sample's route, when the LLM router named one or the embedded router is sure."""
    names = {route.name for route in routes}
    floor = (router.DEFAULT_THRESHOLD if threshold is None else threshold) + SELF_MIN_SCORE
    seen: set[str] = set()
    for sample in samples:
        key = sample.text.lower()
        if key in seen:
            continue
        seen.add(key)
        if sample.llm_route is not None:
            if sample.llm_route in names:
                yield Assignment(sample.text, sample.llm_route, "llm")
            continue
        decision = router.score([("user", sample.text)], routes, threshold=threshold)
        if decision.route is None:
            continue
        if decision.scores[decision.route] >= floor and decision.margin >= SELF_MIN_MARGIN:
            yield Assignment(sample.text, decision.route, "self")


def learn(
    router: EmbeddedRouter,
    routes: Sequence[RouteText],
    samples: Sequence[Sample],
    *,
    threshold: float | None = None,
    learned_at: float = 0.0,
) -> LearnedRoutes:
    """Learned examples per route: the LLM's labels first, then confident self-labels."""
    plain = tuple(RouteText(r.name, r.description, r.examples) for r in routes)
    by_route: dict[str, list[Assignment]] = {}
    for assignment in assign(router, plain, samples, threshold=threshold):
        by_route.setdefault(assignment.route, []).append(assignment)
    learned: dict[str, LearnedRoute] = {}
    for route in plain:
        found = by_route.get(route.name)
        if not found:
            continue
        # Samples arrive newest first; the LLM's labels are worth more than the router's own.
        kept = sorted(found, key=lambda a: a.source != "llm")[:MAX_PER_ROUTE]
        learned[route.name] = LearnedRoute(
            tuple(a.text for a in kept),
            from_llm=sum(a.source == "llm" for a in kept),
            self_trained=sum(a.source == "self" for a in kept),
        )
    return LearnedRoutes(learned, learned_at, len(samples))
