"""Rewriting route phrases about "the assistant" into the second person users write in.

Descriptions talk about the assistant in the third person ("questions about the assistant
itself", "its name"), prompts address it directly ("how old are you", "what's your name"). The
embedding model puts those far apart (cosine ~0.0 against ~0.3 for "questions about yourself"),
so phrases are embedded the way a user would say them.
"""

from __future__ import annotations

import re

_AGENT = r"(?:the|this|our|your) (?:assistant|bot|chatbot|ai|model|agent)"
_MENTION = re.compile(rf"\b{_AGENT}\b", re.IGNORECASE)
_RULES = (
    (re.compile(rf"\b{_AGENT}(?:'s| is)? (?:own )?(?:itself|self)\b", re.IGNORECASE), "yourself"),
    (re.compile(rf"\b{_AGENT}'s\b", re.IGNORECASE), "your"),
    (_MENTION, "you"),
)
_PRONOUNS = (
    (re.compile(r"\b(?:its|their)\b", re.IGNORECASE), "your"),
    (re.compile(r"\bitself\b", re.IGNORECASE), "yourself"),
    (re.compile(r"\bit\b", re.IGNORECASE), "you"),
)


def mentions_assistant(description: str) -> bool:
    return _MENTION.search(description) is not None


def second_person(text: str, about_assistant: bool) -> str:
    """text with the assistant as "you"; bare it/its too when the description is about it."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    if about_assistant:
        for pattern, replacement in _PRONOUNS:
            text = pattern.sub(replacement, text)
    return text
