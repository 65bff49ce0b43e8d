"""What every router backend promises, and what it answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from proxy.routing.conversation import Turn
from proxy.routing.routes import Route


@dataclass(frozen=True, slots=True)
class RouterAnswer:
    route: str | None  # None: no route fits, the request keeps its default model
    backend: str  # which backend decided: embedded, ollama, openai-compatible
    scores: Mapping[str, float] = field(default_factory=dict)
    margin: float | None = None  # embedded: best minus runner-up
    named: tuple[str, ...] = ()  # every route an LLM router named, best first
    escalated: bool = False  # hybrid: the embedded router was unsure and asked the LLM
    degraded: bool = False  # hybrid: the LLM failed, so the unsure embedded answer stands
    detail: str | None = None  # why, in words, for --explain and traces


# Headers for the router LLM call made in this context (traceparent, x-request-id): set by
# the caller around `decide`, so the call joins the request's trace without every backend's
# signature carrying them. HTTP backends send them; in-process ones ignore them.
CALL_HEADERS: ContextVar[Mapping[str, str] | None] = ContextVar("router_call_headers", default=None)


class RouterUnavailable(Exception):
    """The backend could not decide: down, timed out, or answered nonsense."""


class RouterBackend(Protocol):
    name: str

    async def start(self) -> None:
        """Load or connect; raise RouterUnavailable when this backend cannot serve."""

    def prepare(self, routes: Sequence[Route]) -> None:
        """Do per-route-set work (embedding) before traffic; a no-op for LLM routers."""

    async def decide(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer: ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """One line for the startup banner and `plano route`."""
