"""Splitting a route's plain-words description into the phrases it is made of.

Users describe a route as a topic followed by a list, e.g. "credit card questions, such as
limits, APR, rewards points and lost cards". One embedding of the whole sentence blurs the list
into an average that matches none of its items well; embedding the head and each item apart
lets a prompt about one item ("what's my APR?") match that item closely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that introduce the list of examples of a topic.
# "like" only where it introduces examples ("things like flights"), not as the verb of a
# first-person description ("I'd like you to write...", "I would like to chat").
_LIKE_AS_VERB = "".join(
    rf"(?<!\b{word})" for word in ("I", "we", "you", "they", "'d", "\u2019d", "would", "feel")
)
_MARKER = re.compile(
    r"(?:,\s*|\s+)(?:such as|including|includes|e\.g\.?|for example|for instance)\s*[:,]?\s+"
    rf"|,\s*like\s+|{_LIKE_AS_VERB}\s+like\s+(?!to\b|you\b|me\b|it\b|that\b|this\b)"
    r"|\s*:\s+|\s+[-\u2013\u2014]\s+",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\(([^()]*)\)")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[A-Za-z])")
# Abbreviations whose full stop ends no sentence: "solved, e.g. algebra" is one sentence.
_ABBREVIATION_END = re.compile(r"\b(?:e\.g|i\.e|vs|incl|approx|esp)\.$", re.IGNORECASE)
_LIST_SEP = re.compile(r"\s*[,;]\s*")
_CONJ = re.compile(r"\s+(?:and|or|and/or|&)\s+|\s*/\s*", re.IGNORECASE)
_LEADING_CONJ = re.compile(r"^(?:and|or|and/or|&)\s+", re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:etc\.?|and so on|and more|or more|anything else|other \w+|similar)$", re.IGNORECASE
)
# A phrase this long is a sentence, not a list item: leave it whole.
MAX_ITEM_WORDS = 12


@dataclass(frozen=True, slots=True)
class Parsed:
    """A description as a topic (head) and the things it lists (items), in order."""

    head: str
    items: tuple[str, ...]


def _clean(text: str) -> str:
    return text.strip().strip(".,;:!?").strip()


def _items(text: str) -> list[str]:
    """The items of a list such as "a, b and c": each comma piece, and its and/or parts."""
    out: list[str] = []
    for piece in _LIST_SEP.split(text):
        piece = _clean(_LEADING_CONJ.sub("", _clean(piece)))
        if not piece or _FILLER.match(piece):
            continue
        out.append(piece)
        if len(piece.split()) <= MAX_ITEM_WORDS:
            parts = [_clean(p) for p in _CONJ.split(piece)]
            parts = [p for p in parts if p and not _FILLER.match(p)]
            if len(parts) > 1:
                out.extend(parts)
    return out


# "other travel questions (e.g., weather, currency)": examples of what the route is *not*.
_OTHER_BEFORE = re.compile(r"\bother\b(?:\s+\S+){0,3}\s*$", re.IGNORECASE)


def _parse_sentence(sentence: str) -> tuple[str, list[str]]:
    items: list[str] = []
    for match in _PAREN.finditer(sentence):
        if _OTHER_BEFORE.search(sentence[: match.start()]):
            continue  # agents' descriptions say what they leave to other agents this way
        items.extend(_items(match.group(1)))
    sentence = _clean(_PAREN.sub(" ", sentence))
    sentence = re.sub(r"\s+", " ", sentence)
    parts = _MARKER.split(sentence, maxsplit=1)
    if len(parts) == 2 and _clean(parts[0]) and _clean(parts[1]):
        head = _clean(parts[0])
        items.extend(_items(parts[1]))
    else:
        head = sentence
        # A bare list ("weather, alarms and timers") is its own items; a plain clause is not.
        pieces = _items(sentence)
        if len(pieces) > 1:
            items.extend(pieces)
    return head, items


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    for piece in _SENTENCE.split(text):
        if out and _ABBREVIATION_END.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def parse(description: str) -> Parsed:
    """Head and items of a description; later sentences add their heads and items as items."""
    heads: list[str] = []
    items: list[str] = []
    for sentence in _sentences(description.strip()):
        if not _clean(sentence):
            continue
        head, found = _parse_sentence(sentence)
        if head:
            heads.append(head)
        items.extend(found)
    if not heads:
        return Parsed("", ())
    seen = {heads[0].lower()}
    unique: list[str] = []
    for item in heads[1:] + items:
        if item.lower() not in seen:
            seen.add(item.lower())
            unique.append(item)
    return Parsed(heads[0], tuple(unique))
