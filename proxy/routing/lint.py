"""Route descriptions a router will struggle with: overlapping, vague and terse ones.

Upstream's docs advise specific, noun-rich descriptions that do not overlap and names
that match their descriptions; these checks turn that advice into findings. Similarity
comes from the embedded router's sentence encoder, so "overlap" means what that router
would confuse, not just shared words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from proxy.routing.routes import Route

Embed = Callable[[Sequence[str]], np.ndarray]  # unit-norm rows

# Cosine similarity of two descriptions above which the router confuses them: on
# all-MiniLM-L6-v2, paraphrases of one intent sit above ~0.7, distinct topics below ~0.5.
OVERLAP_SIMILARITY = 0.62
# A name that has little to do with its description misleads the LLM router.
NAME_MISMATCH_SIMILARITY = 0.15
MIN_CONTENT_WORDS = 4
# Below this many content words and without examples, a description names too little for
# the embedded router to match everyday wording (measured in docs/benchmarks.md: terse
# descriptions route 10-25 points worse than ones that list what they cover).
TERSE_CONTENT_WORDS = 8
SUGGESTED_EXAMPLES = 3
# Worth naming as the nearest built-in task type or domain, though too far to lend its examples.
NEAR_TYPE_SIMILARITY = 0.5
VAGUE_WORDS = frozenset(
    [
        "anything",
        "everything",
        "general",
        "generic",
        "misc",
        "miscellaneous",
        "stuff",
        "things",
        "thing",
        "various",
        "other",
        "others",
        "etc",
        "whatever",
        "all",
        "any",
    ]
)
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "or",
        "the",
        "of",
        "to",
        "for",
        "in",
        "on",
        "with",
        "by",
        "about",
        "from",
        "as",
        "at",
        "is",
        "are",
        "be",
        "such",
        "like",
        "e.g",
        "i.e",
        "including",
        "include",
        "includes",
        "into",
        "over",
        "under",
        "your",
        "my",
        "their",
        "its",
        "it",
        "this",
        "that",
        "these",
        "those",
        "how",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "help",
        "questions",
        "question",
        "tasks",
        "task",
        "requests",
        "request",
    ]
)
_WORD = re.compile(r"[a-z0-9][a-z0-9+#.\-]*")


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # overlap, vague, terse, name-mismatch, example-elsewhere
    routes: tuple[str, ...]
    message: str
    hint: str
    examples: tuple[str, ...] = ()  # suggested example prompts (terse)

    def as_json(self) -> dict:
        out = {
            "code": self.code,
            "routes": list(self.routes),
            "message": self.message,
            "hint": self.hint,
        }
        if self.examples:
            out["examples"] = list(self.examples)
        return out


def content_words(text: str) -> list[str]:
    return [w.strip(".-") for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def lint_routes(routes: Sequence[Route], embed: Embed) -> list[Finding]:
    findings: list[Finding] = []
    for route in routes:
        findings += _vague(route)
    if not routes:
        return findings
    findings += _terse(routes, embed)
    descriptions = embed([r.description for r in routes])
    names = embed([r.name.replace("_", " ").replace("-", " ") for r in routes])
    for i, route in enumerate(routes):
        similarity = float(names[i] @ descriptions[i])
        if similarity < NAME_MISMATCH_SIMILARITY:
            findings.append(
                Finding(
                    "name-mismatch",
                    (route.name,),
                    f"the name '{route.name}' says little about its description "
                    f"(similarity {similarity:.2f})",
                    "name the route after what its description covers",
                )
            )
    similarity = descriptions @ descriptions.T
    for i in range(len(routes)):
        for j in range(i + 1, len(routes)):
            if similarity[i, j] >= OVERLAP_SIMILARITY:
                shared = sorted(
                    set(content_words(routes[i].description))
                    & set(content_words(routes[j].description))
                )
                also = f"; both mention {', '.join(shared[:6])}" if shared else ""
                findings.append(
                    Finding(
                        "overlap",
                        (routes[i].name, routes[j].name),
                        f"'{routes[i].name}' and '{routes[j].name}' overlap "
                        f"(similarity {similarity[i, j]:.2f}){also}",
                        "say what sets each apart, or merge them into one route",
                    )
                )
    findings += _examples_elsewhere(routes, descriptions, embed)
    return findings


def _vague(route: Route) -> list[Finding]:
    words = content_words(route.description)
    found = []
    if len(words) < MIN_CONTENT_WORDS and route.examples:  # without examples: terse says it
        found.append(
            Finding(
                "vague",
                (route.name,),
                f"'{route.name}' is described in {len(words)} content word(s): "
                f"{route.description!r}",
                "list the kinds of requests it covers, for example 'X, such as A, B and C'",
            )
        )
    vague = sorted(set(words) & VAGUE_WORDS)
    if vague:
        found.append(
            Finding(
                "vague",
                (route.name,),
                f"'{route.name}' uses catch-all words ({', '.join(vague)})",
                "a catch-all route competes with every other: leave those requests to the "
                "default model instead",
            )
        )
    return found


def _terse(routes: Sequence[Route], embed: Embed) -> list[Finding]:
    """Routes with a short description and no examples, with library examples to add."""
    from proxy.routing.embedded.library import LIBRARY, lenders, route_similarity
    from proxy.routing.embedded.router import RouteText, lending_phrases

    phrases = [lending_phrases(RouteText(r.name, r.description, r.examples)) for r in routes]
    lent = lenders(phrases, embed)
    findings = []
    for i, route in enumerate(routes):
        words = content_words(route.description)
        if route.examples or len(words) >= TERSE_CONTENT_WORDS:
            continue
        message = (
            f"'{route.name}' is described in {len(words)} content word(s) and has no examples: "
            f"{route.description!r} is too terse to match how people ask"
        )
        kinds = lent.get(i, [])
        if kinds:
            pool = [ex for kind in kinds for ex in LIBRARY[kind].examples]
            closeness = embed(pool) @ embed([route.description])[0]
            picks = tuple(pool[j] for j in np.argsort(-closeness)[:SUGGESTED_EXAMPLES])
            names = " and ".join(f"'{LIBRARY[kind].name}'" for kind in kinds)
            hint = (
                f"the router lends it the built-in {names} example prompts; add `examples:` "
                "of your own, such as these, to say what it covers in your words"
            )
        else:
            similarity = route_similarity(phrases[i], embed)
            nearest = (
                f" (the nearest, '{LIBRARY[int(np.argmax(similarity))].name}', "
                f"at similarity {float(similarity.max()):.2f})"
                if similarity.max() >= NEAR_TYPE_SIMILARITY
                else ""
            )
            picks = ()
            hint = (
                "list what it covers ('X, such as A, B and C') and add 5-10 `examples:` of "
                f"prompts it should get; no built-in task type or domain fits it{nearest}"
            )
        findings.append(Finding("terse", (route.name,), message, hint, picks))
    return findings


def _examples_elsewhere(routes, descriptions: np.ndarray, embed: Embed) -> list[Finding]:
    """An example prompt closer to another route's description than to its own."""
    findings = []
    for i, route in enumerate(routes):
        if not route.examples:
            continue
        vectors = embed(list(route.examples))
        closest = np.argmax(vectors @ descriptions.T, axis=1)
        for example, j in zip(route.examples, closest, strict=True):
            if j != i:
                findings.append(
                    Finding(
                        "example-elsewhere",
                        (route.name, routes[j].name),
                        f"the example {example!r} of '{route.name}' reads closer to "
                        f"'{routes[j].name}'",
                        "sharpen one of the two descriptions, or move the example",
                    )
                )
    return findings
