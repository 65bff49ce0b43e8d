"""Embedded first; the LLM router only for the decisions the embedded router is unsure of."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from proxy.routing.backends.base import RouterAnswer, RouterBackend, RouterUnavailable
from proxy.routing.backends.embedded import EmbeddedBackend
from proxy.routing.conversation import Turn
from proxy.routing.routes import Route

log = logging.getLogger("plano.routing")


class HybridBackend:
    name = "hybrid"

    def __init__(self, embedded: EmbeddedBackend, llm: RouterBackend, escalate_below: float):
        self.embedded = embedded
        self.llm = llm
        self.escalate_below = escalate_below

    async def start(self) -> None:
        await self.embedded.start()
        try:
            await self.llm.start()
        except RouterUnavailable as exc:
            # The embedded router still decides everything; escalations will fail over.
            log.warning("router LLM unavailable, the embedded router decides alone: %s", exc)

    def prepare(self, routes: Sequence[Route]) -> None:
        self.embedded.prepare(routes)

    async def decide(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer:
        first = await self.embedded.decide(turns, routes)
        if first.margin is None or first.margin >= self.escalate_below or not routes:
            return first
        try:
            second = await self.llm.decide(turns, routes)
        except Exception as exc:  # RouterUnavailable, or a bug in the LLM backend
            # The embedded answer is a real answer: better than none.
            return dataclasses.replace(
                first,
                degraded=True,
                detail=f"{first.detail}; LLM router failed ({exc}), kept embedded answer",
            )
        return dataclasses.replace(
            second,
            scores=first.scores,
            margin=first.margin,
            escalated=True,
            detail=f"embedded margin {first.margin:.3f} < {self.escalate_below:g}; {second.detail}",
        )

    async def close(self) -> None:
        await self.embedded.close()
        await self.llm.close()

    def describe(self) -> str:
        return (
            f"hybrid: {self.embedded.describe()}, escalating below margin "
            f"{self.escalate_below:g} to {self.llm.describe()}"
        )
