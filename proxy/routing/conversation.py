"""The part of a conversation a router looks at, truncated the way upstream does it.

System, developer and tool messages and messages without text are dropped; the last 16
messages are kept; then messages are taken newest first until a token budget (length / 4)
is spent. A user message that does not fit is middle-trimmed, 60% head and 40% tail,
because users frame a task at the start and ask at the end of a long paste.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from proxy.canonical import Message

Turn = tuple[str, str]  # (role, text)

MAX_ROUTING_TURNS = 16
TOKEN_DIVISOR = 4
DEFAULT_TOKEN_BUDGET = 8192
TRIM_MARKER = "…"
MAX_TURN_BYTES = DEFAULT_TOKEN_BUDGET * TOKEN_DIVISOR
_ROUTED_ROLES = ("user", "assistant")


def turns_from_messages(messages: Sequence[Message], *, user_only_tail: bool = False) -> list[Turn]:
    turns = [(m.role, m.text) for m in messages if m.role in _ROUTED_ROLES]
    # No router reads more than its token budget of one turn: a 30 MB paste is cut here,
    # once, instead of being lowercased, hashed and tokenized whole downstream.
    turns = [
        (role, trim_middle(text, MAX_TURN_BYTES) if len(text) > MAX_TURN_BYTES // 4 else text)
        for role, text in turns
        if text.strip()
    ]
    if user_only_tail:
        # route_on_user_only: assistant steps after the last user turn do not change the
        # decision, so the tail (and the cache key) is the same as at that user turn.
        while turns and turns[-1][0] != "user":
            turns.pop()
    return turns


def truncate(
    turns: Sequence[Turn], budget_tokens: int = DEFAULT_TOKEN_BUDGET, prompt_chars: int = 0
) -> list[Turn]:
    recent = list(turns[-MAX_ROUTING_TURNS:])
    used = prompt_chars // TOKEN_DIVISOR
    kept: list[Turn] = []
    for role, text in reversed(recent):
        cost = len(text.encode()) // TOKEN_DIVISOR
        if used + cost > budget_tokens:
            remaining = budget_tokens - used
            if role == "user" and remaining > 0:
                kept.append((role, trim_middle(text, remaining * TOKEN_DIVISOR)))
            break
        used += cost
        kept.append((role, text))
    if not kept and recent:
        role, text = recent[-1]
        kept.append((role, trim_middle(text, max(budget_tokens, 1) * TOKEN_DIVISOR)))
    kept.reverse()
    return kept


def trim_middle(text: str, max_bytes: int) -> str:
    """At most max_bytes of UTF-8: 60% from the head, an ellipsis, the rest from the tail."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    marker = TRIM_MARKER.encode()
    if max_bytes <= len(marker):
        return data[:max_bytes].decode(errors="ignore")
    available = max_bytes - len(marker)
    head = available * 3 // 5
    tail = available - head
    return (
        data[:head].decode(errors="ignore")
        + TRIM_MARKER
        + data[len(data) - tail :].decode(errors="ignore")
    )


def cache_key(turns: Sequence[Turn], tail: int = 4) -> bytes:
    """A digest of the normalized conversation tail a decision depends on: cache keys stay
    small however long the turns are."""
    digest = hashlib.blake2b(digest_size=16)
    for role, text in turns[-tail:]:
        digest.update(role.encode())
        digest.update(b"\x00")
        digest.update(" ".join(text.lower().split()).encode())
        digest.update(b"\x01")
    return digest.digest()
