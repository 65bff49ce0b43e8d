"""The request in a prompt that brings its own material: "Summarize this: <an article>".

The embedding of such a prompt is mostly the article's topic (the weather, a council vote),
so it matches whatever route is about that topic rather than summarization. The router also
scores the few words before the colon or first line break, the request itself, and keeps the
better match per route (router.py).
"""

from __future__ import annotations

import re

# Up to the first ": " or line break within the first 120 characters.
_REQUEST = re.compile(r"^(.{3,120}?)(?::\s|\n)")
REQUEST_MAX_WORDS = 14  # longer than this, the text before the colon is material itself
MATERIAL_MIN_WORDS = 8  # "Translate: hello" is one short request, not a request plus material


def instruction(text: str) -> str | None:
    """The request before the material, or None when the prompt has no such shape."""
    match = _REQUEST.match(text)
    if not match:
        return None
    request = match.group(1).strip()
    if not request or len(request.split()) > REQUEST_MAX_WORDS:
        return None
    if len(text[match.end() :].split()) < MATERIAL_MIN_WORDS:
        return None
    return request
