"""A request that asks for several things at once, cut into the clauses that ask them.

"What's the weather in Paris and is there a flight there tomorrow?" is two requests for
two agents. The embedded router scores a whole message as one point in embedding space,
which lands on one agent; scored clause by clause, each request finds its own agent, in
the order the user asked. Used only to pick agents (an orchestrator may run several);
a model route stays one decision per request.
"""

from __future__ import annotations

import re

# Sentence ends, and the conjunctions that start a new request ("..., and is there...").
_BOUNDARY = re.compile(
    r"(?<=[.?!;])\s+|\s*,?\s+(?:and also|and then|and|also|plus|then)\s+", re.IGNORECASE
)
# A clause this short is a list item ("Paris and Rome"), not a request of its own.
MIN_CLAUSE_WORDS = 3
MAX_CLAUSES = 4
MAX_CHARS = 1000  # a long paste is one request, not many


def split_clauses(text: str) -> list[str]:
    """The clauses of `text`; a single one when it does not read as several requests."""
    text = " ".join(text.split())
    if len(text) > MAX_CHARS:
        return [text]
    clauses: list[str] = []
    for piece in _BOUNDARY.split(text):
        piece = piece.strip(" ,")
        if not piece:
            continue
        if clauses and len(piece.split()) < MIN_CLAUSE_WORDS:
            clauses[-1] = f"{clauses[-1]} and {piece}"  # too short to stand alone
        elif clauses and len(clauses[-1].split()) < MIN_CLAUSE_WORDS:
            clauses[-1] = f"{clauses[-1]} and {piece}"
        else:
            clauses.append(piece)
    return clauses if 1 < len(clauses) <= MAX_CLAUSES else [text]
