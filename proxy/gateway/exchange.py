"""What happened to one client request: the record behind access logs and telemetry."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from proxy.canonical import ChatResponse, Usage

if TYPE_CHECKING:
    from proxy.routing.service import RoutingDecision


@dataclass(slots=True)
class Attempt:
    model: str
    outcome: str  # "ok", "HTTP 503", "connect error", "timeout", "malformed response"...
    seconds: float


@dataclass(slots=True)
class Exchange:
    request_id: str
    api: str  # client API: openai_chat, anthropic_messages
    path: str
    requested_model: str | None = None
    model: str | None = None  # provider/model_id that answered
    provider: str | None = None
    passthrough: bool = False
    stream: bool = False
    status: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    result: ChatResponse | None = None  # the parsed answer, when not passed through
    error: str | None = None
    routing: RoutingDecision | None = None  # set when the router chose (or fell back)
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished_at: float | None = None

    @property
    def latency_s(self) -> float:
        return (self.finished_at or time.perf_counter()) - self.started

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
