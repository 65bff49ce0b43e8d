"""What a built-in guardrail offers the chain: it runs in-process, on parsed bodies.

A built-in sees the request body as the client sent it (OpenAI Chat, Anthropic Messages,
Responses, or an agent's {"model", "messages"}), reads and rewrites only its message text
(proxy.filters.texts), and may leave per-request state behind for the answer: the PII
anonymizer's placeholders, restored in the answer by the transform `answer` returns.
"""

from __future__ import annotations

from typing import Protocol

from proxy.filters.verdict import Verdict


class AnswerTransform(Protocol):
    """Rewrites one answer's text: a stream's deltas in order, or a whole answer at once."""

    def feed(self, text: str) -> str:
        """The text to send now for this delta; may hold back an unfinished tail."""

    def flush(self) -> str:
        """What was held back, at the end of the answer."""


class BuiltinFilter(Protocol):
    kind: str  # pii, prompt_injection, content_policy
    # The largest body the chain checks on the event loop; a larger one is checked in a
    # worker thread, so that other requests are not held up meanwhile.
    inline_bytes: int

    def warm(self) -> None:
        """Load now what the first request would otherwise load (start-up calls it, off
        the event loop); nothing for a built-in that loads nothing lazily."""

    def check_request(self, body: dict, api: str, state: dict) -> Verdict:
        """The verdict on a request body; a MODIFY carries the new body as JSON bytes.
        `api` is the client API name (openai_chat, anthropic_messages, openai_responses,
        agent); `state` is this filter's per-request scratch space, kept for `answer`."""

    def answer(self, state: dict) -> AnswerTransform | None:
        """How this request's answer text is rewritten (None: it is not)."""
