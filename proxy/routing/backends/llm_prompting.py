"""What LLM router backends share: the prompt they send and how they read the answer."""

from __future__ import annotations

from collections.abc import Sequence

from proxy.routing.backends.base import RouterAnswer, RouterUnavailable
from proxy.routing.conversation import DEFAULT_TOKEN_BUDGET, Turn, truncate
from proxy.routing.prompts import (
    PromptStyle,
    RouterAnswerError,
    build_prompt,
    parse_answer,
    prompt_chars,
    style_for,
)
from proxy.routing.routes import Route


class RouterPrompting:
    """`style` None: chosen by the model's name. An agent orchestrator always speaks
    orchestrator-v1, whatever its model is called, and lists routes as agents."""

    def __init__(
        self,
        model: str,
        budget_tokens: int = DEFAULT_TOKEN_BUDGET,
        *,
        style: PromptStyle | None = None,
        agent_routes: bool = False,
    ):
        self.model = model
        self.style: PromptStyle = style or style_for(model)
        self.budget_tokens = budget_tokens
        self.agent_routes = agent_routes

    def prompt(self, turns: Sequence[Turn], routes: Sequence[Route]) -> str:
        kept = truncate(turns, self.budget_tokens, prompt_chars(self.style))
        return build_prompt(self.style, routes, kept, agent_routes=self.agent_routes)

    def answer(self, text: str, routes: Sequence[Route], backend: str) -> RouterAnswer:
        try:
            named = parse_answer(text)
        except RouterAnswerError as exc:
            raise RouterUnavailable(f"{backend}: {exc}") from None
        known = {r.name for r in routes}
        # A small model may invent a name; that is no route, not an error.
        valid = tuple(name for name in named if name in known)
        invented = [name for name in named if name not in known]
        detail = f"{self.model} answered {text.strip()[:120]!r}"
        if invented:
            detail += f"; unknown route {invented[0]!r} ignored"
        return RouterAnswer(
            route=valid[0] if valid else None, backend=backend, named=valid, detail=detail
        )
