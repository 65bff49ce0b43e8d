"""The embedded router: which route, described in plain words, fits a prompt best, or none.

Each route becomes a few prototype vectors: its name, its whole description, the head of the
description and each item it lists (see phrases.py), each item embedded in a few phrasings and
averaged (prompt ensembling: the item alone, "<head>: <item>" so a bare item like "fuel" keeps
its topic, and "a question about <item>" which reads like a prompt), plus any example prompts
the user wrote. A prompt's match to a route is a soft maximum of its cosines to the route's
prototypes: routes are unions of sub-topics and a prompt is about one of them, but a prompt that
also fits the route's other phrases is more surely about it than one fitting a single word.

A route described in a few words ("generating new code, writing functions", "bank accounts
and transfers") names too little to match how people ask. When its phrases read like one of
the task types of the built-in library (library.py: code generation, debugging, math,
reasoning, creative writing, summarization, translation, extraction, chit-chat, general
questions) or one of its domains (library_domains.py: banking, travel, HR, IT support, ...),
it borrows that type's example prompts; prompts `plano route --learn` assigned to it from
traffic (learn.py) join the same way. Each route is pooled in segments (its own words; the
examples of each type it borrowed, one segment a type; learned prompts), the best segment
counting, with the example segments a little below the route's own words: a prompt-to-prompt
cosine runs higher than a prompt-to-phrase one. The types no route of a set borrows join that
set's background below: for it, they are "none of these" too.

A prompt that brings its own material ("Summarize this: <an article>") is also scored by the
request before the material (instruction.py), the better of the two counting per route: the
article's topic must not decide where a request to summarize it goes.

The background of generic prompts (background.py) is an explicit "none of these" class: the
mean cosine of the prompt's nearest background prompts is subtracted (weighted) from every
route's match, so a greeting that matches a code route weakly, but a background greeting well,
is not routed, whatever the number of routes. Background prompts close to one of the route
set's own phrases are left out for that set. The same background then calibrates the scale: 0
is how well a typical background prompt does against its best route (its own nearest neighbours
excluded), 1 is one standard deviation above that. The out-of-scope threshold lives on that
scale, so one default suits route sets of any size or wording.

Measured and rejected (see bench/router_embedded.py): per-phrase and per-route Z-norm, a BM25
channel, centring away the background mean or top principal components (also separately for
prompts and descriptions), stripping "can you tell me" frames from prompts, more prompt-like
item phrasings ("help me with <item>"), a softmax regression per route set trained on the
prototypes with the background as a "none" class (it learns "sounds like a prompt" as "none",
since prototypes are phrases), and comparing against a list of generic topic names instead of
generic prompts (rejects too many in-scope prompts).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from proxy.routing.embedded.background import BACKGROUND
from proxy.routing.embedded.encoder import Encoder
from proxy.routing.embedded.instruction import instruction
from proxy.routing.embedded.library import LIBRARY, RoutePhrases, TaskType, lenders
from proxy.routing.embedded.lru import LRU
from proxy.routing.embedded.perspective import mentions_assistant, second_person
from proxy.routing.embedded.phrases import parse
from proxy.routing.embedded.weights import find_model

# Phrasings of one listed item, averaged into its prototype.
ITEM_TEMPLATES = ("{item}", "{head}: {item}", "a question about {item}")
HEAD_TEMPLATES = ("{head}", "a question about {head}")
# Earlier user turns lend a follow-up their topic: "and in rust?" alone says nothing about
# code. They are read together with the latest turn, as one text (the model weighs the words
# itself), rather than averaging separate scores: a short follow-up's own scores are noise
# that would drown its context. A short latest turn is scored only in context; a longer one
# stands mostly on its own, the context nudging it.
SHORT_FOLLOW_UP_WORDS = 4
CONTEXT_WEIGHT = 0.25
CONTEXT_TURNS = 2
# Soft maximum over a route's prototypes: temperature of the log-mean-exp, in cosine units. At
# 0.05 one clearly best prototype dominates, a near tie among several counts for a little more.
POOL_TEMPERATURE = 0.05
# The reject class: the prompt's mean cosine to its REJECT_NEIGHBOURS nearest background
# prompts, times REJECT_WEIGHT, is subtracted from every route's match. A prompt-to-prompt
# cosine runs higher than a prompt-to-phrase one, hence a weight below 1.
REJECT_NEIGHBOURS = 3
REJECT_WEIGHT = 0.5
# Background prompts this close to one of a route set's own prototypes are about that route,
# not generic: they are left out of that set's reject class and calibration.
BACKGROUND_OVERLAP = 0.5
MIN_BACKGROUND = 20
# Built route sets (config routes plus per-request overrides) and recent texts' embeddings.
INDEX_CACHE_SIZE = 32
PHRASE_CACHE_SIZE = 8192
QUERY_CACHE_SIZE = 256
MIN_SCALE = 1e-3
# Borrowed examples are prompts, and a prompt-to-prompt cosine runs higher than a
# prompt-to-phrase one: they count for a little less than the route's own words. Measured
# again with the domains (shared CLINC descriptions, tasks_dev): -0.05 costs tasks_dev 1.6
# points, -0.01 and 0 cost CLINC 0.7 and 1.1 points in scope.
BORROW_BIAS = -0.03
# A borrowed example this much closer to another route's own words than to the borrower's
# is about that other route, and is left out: a "travel" type lent to a hotel route brings
# flight questions, which in a set with a flight route speak for that one (the travel-agents
# demo's "Is flight AZ205 to Rome on time?" was 0.39 ahead of the hotel agent; now 1.6).
# Measured on the tuned and dev sets: 0.15 moves in-scope accuracy -0.7 to +0.7 points and
# out-of-scope recall +1 to +4; 0.05-0.1 cost the terse CLINC dev file 1.5-2.9 points,
# 0.2 no longer separates the demo's flight question.
SIBLING_MARGIN = 0.15


@dataclass(frozen=True, slots=True)
class RouteText:
    """What the router needs to know about one route."""

    name: str
    description: str
    examples: tuple[str, ...] = ()
    # Prompts `plano route --learn` assigned to the route from traffic: scored with the
    # borrowed examples, a little below what the user wrote.
    learned: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EmbeddedScores:
    """One routing decision.

    scores holds every route's calibrated score (0 = a typical generic prompt's best match, in
    standard deviations of that; see the module docstring); it is empty, with best "", when
    there was nothing to score (no routes, or no user text). margin is the best score less the
    runner-up's, on the same scale: how clearly the best route won.
    """

    route: str | None
    scores: dict[str, float]
    best: str
    margin: float
    threshold: float


@dataclass(frozen=True, slots=True)
class RouteIndex:
    """A route set's prototypes, grouped by route, its reject class and its calibration."""

    names: tuple[str, ...]
    prototypes: np.ndarray  # (n_prototypes, dim), rows of a segment contiguous
    # A route is one to three segments, pooled apart: its own phrases and examples, then
    # the examples it borrowed from the library (library.py) and the prompts learned from
    # traffic (learn.py), when it has any.
    starts: np.ndarray  # first prototype row of each segment, for np.*.reduceat
    owner: np.ndarray  # segment of each prototype row
    counts: np.ndarray  # prototypes per segment: made once here, not per decision
    route_starts: np.ndarray  # first segment of each route
    bias: np.ndarray  # added to each segment's pooled match
    background: np.ndarray  # (n_background, dim): generic prompts kept for this route set
    mean: float
    scale: float

    def raw(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, routes) soft-maximum cosine of each text to each route's prototypes."""
        sims = embeddings @ self.prototypes.T
        top = np.maximum.reduceat(sims, self.starts, axis=1)
        spread = np.exp((sims - top[:, self.owner]) / POOL_TEMPERATURE)
        pooled = np.add.reduceat(spread, self.starts, axis=1) / self.counts
        segments = top + POOL_TEMPERATURE * np.log(pooled) + self.bias
        if len(self.route_starts) == segments.shape[1]:
            return segments
        return np.maximum.reduceat(segments, self.route_starts, axis=1)

    def generic(self, embeddings: np.ndarray, *, leave_out_self: bool = False) -> np.ndarray:
        """(n,) mean cosine of each text to its nearest background prompts."""
        sims = embeddings @ self.background.T
        if leave_out_self:  # the background scored against itself, for calibration
            np.fill_diagonal(sims, -1.0)
        k = min(REJECT_NEIGHBOURS, sims.shape[1])
        if k == 0:
            return np.zeros(len(embeddings), dtype=np.float32)
        return np.partition(sims, -k, axis=1)[:, -k:].mean(axis=1)

    def signal(self, embeddings: np.ndarray, *, leave_out_self: bool = False) -> np.ndarray:
        """(n, routes) match to each route, less the match to generic prompts."""
        generic = self.generic(embeddings, leave_out_self=leave_out_self)
        return self.raw(embeddings) - REJECT_WEIGHT * generic[:, None]

    def calibrate(self, signal: np.ndarray) -> np.ndarray:
        return (signal - self.mean) / self.scale

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, routes) calibrated scores, where the threshold applies."""
        return self.calibrate(self.signal(embeddings))


@dataclass(frozen=True, slots=True)
class _Words:
    """A route's words as the router reads them: the assistant spoken to as "you"."""

    name: str
    description: str
    head: str
    items: tuple[str, ...]
    examples: tuple[str, ...]

    @property
    def own_head(self) -> str:
        """The head when it says something the whole description does not, else ""."""
        return self.head if self.head.lower() != self.description.lower() else ""


def _words(route: RouteText) -> _Words:
    about_assistant = mentions_assistant(route.description)

    def spoken(text: str) -> str:
        return second_person(text, about_assistant)

    description = " ".join(route.description.split())
    parsed = parse(description) if description else None
    return _Words(
        name=re.sub(r"[_\-.]+", " ", route.name).strip(),
        description=spoken(description),
        head=spoken(parsed.head) if parsed else "",
        items=tuple(spoken(item) for item in parsed.items) if parsed else (),
        examples=tuple(e.strip() for e in route.examples if e.strip()),
    )


def route_units(route: RouteText) -> list[tuple[str, ...]]:
    """Groups of texts, each averaged into one prototype of the route."""
    words = _words(route)
    units: list[tuple[str, ...]] = [(text,) for text in (words.name, words.description) if text]
    if words.own_head:
        units.append(tuple(t.format(head=words.head) for t in HEAD_TEMPLATES))
    for item in words.items:
        texts = (t.format(head=words.head, item=item) for t in ITEM_TEMPLATES)
        units.append(tuple(dict.fromkeys(texts)))
    units.extend((example,) for example in words.examples)
    return units


def lending_phrases(route: RouteText) -> RoutePhrases:
    """What the library's signatures are matched against (library.lenders)."""
    words = _words(route)
    whole = tuple(t for t in (words.name, words.description, words.own_head) if t)
    return RoutePhrases(whole=whole, items=words.items + words.examples)


@dataclass(slots=True)
class EmbeddedRouter:
    encoder: Encoder
    background: Sequence[str] = BACKGROUND
    library: Sequence[TaskType] = LIBRARY
    _background: np.ndarray | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _indexes: LRU = field(default_factory=lambda: LRU(INDEX_CACHE_SIZE))
    _phrases: LRU = field(default_factory=lambda: LRU(PHRASE_CACHE_SIZE))
    _queries: LRU = field(default_factory=lambda: LRU(QUERY_CACHE_SIZE))

    # Route only prompts that match better than a typical generic prompt matches anything.
    DEFAULT_THRESHOLD = 0.0

    @classmethod
    def load(cls, model_dir: str | Path | None = None) -> EmbeddedRouter:
        return cls(Encoder.load(find_model(model_dir)))

    def index(self, routes: Sequence[RouteText]) -> RouteIndex:
        # RouteText is frozen, so the routes themselves are the key: hashing a tuple of them
        # is cheaper per decision than building a tuple of their fields.
        key = routes if isinstance(routes, tuple) else tuple(routes)
        cached = self._indexes.get(key)
        if cached is not None:
            return cached
        built = self._build(routes)
        self._indexes.put(key, built)
        return built

    def score(
        self,
        conversation: Sequence[tuple[str, str]],
        routes: Sequence[RouteText],
        *,
        threshold: float | None = None,
    ) -> EmbeddedScores:
        threshold = self.DEFAULT_THRESHOLD if threshold is None else float(threshold)
        turns = [text.strip() for role, text in conversation if role == "user" and text.strip()]
        if not routes or not turns:
            return EmbeddedScores(None, {}, "", 0.0, threshold)
        index = self.index(routes)
        latest = turns[-1]
        in_context = "\n".join(turns[-1 - CONTEXT_TURNS :])
        request = instruction(latest)
        if len(turns) == 1 and request:
            # Encoded apart: in one batch the short request would be padded to the
            # material's length, doubling the encoder's work.
            whole = index.signal(self._embed_queries([latest]))[0]
            asked = index.signal(self._embed_queries([request]))[0]
            combined = np.maximum(whole, asked)
        elif len(turns) == 1:
            combined = index.signal(self._embed_queries([latest]))[0]
        elif len(latest.split()) <= SHORT_FOLLOW_UP_WORDS:
            combined = index.signal(self._embed_queries([in_context]))[0]
        else:
            alone, with_context = index.signal(self._embed_queries([latest, in_context]))
            combined = (alone + CONTEXT_WEIGHT * with_context) / (1.0 + CONTEXT_WEIGHT)
        calibrated = index.calibrate(combined)
        order = np.argsort(-calibrated, kind="stable")
        best = float(calibrated[order[0]])
        runner_up = float(calibrated[order[1]]) if len(order) > 1 else threshold
        return EmbeddedScores(
            route=index.names[order[0]] if best >= threshold else None,
            scores={name: float(s) for name, s in zip(index.names, calibrated, strict=True)},
            best=index.names[order[0]],
            margin=max(0.0, best - runner_up),
            threshold=threshold,
        )

    def _build(self, routes: Sequence[RouteText]) -> RouteIndex:
        names: list[str] = []
        groups: list[list[tuple[str, ...]]] = []
        lending: list[RoutePhrases] = []
        learned: list[tuple[str, ...]] = []
        for route in routes:
            if route.name in names:  # a config error reported elsewhere; the first one wins
                continue
            units = route_units(route) or [(route.name or "route",)]
            names.append(route.name)
            groups.append(units)
            lending.append(lending_phrases(route))
            learned.append(tuple(t.strip() for t in route.learned if t.strip()))
        borrowed, unclaimed = self._borrowed(lending)
        borrowed = self._without_siblings_examples(borrowed, groups)
        # A route's segments, pooled apart: (route, units, bias, says what it covers). Its
        # own words; the examples of each library type it borrowed, one segment a type so
        # that a route lent several domains (a "home" route: music, lists, smart home) is
        # not diluted by their number; the prompts learned from traffic.
        segments = [
            (route, units, bias, said)
            for route, own in enumerate(groups)
            for units, bias, said in (
                (own, 0.0, True),
                *(([(e,) for e in kind], BORROW_BIAS, True) for kind in borrowed.get(route, ())),
                ([(e,) for e in learned[route]], BORROW_BIAS, False),
            )
            if units
        ]
        texts = [text for _, units, _, _ in segments for unit in units for text in unit]
        vectors = dict(zip(texts, self._embed_phrases(texts), strict=True))
        prototypes: list[np.ndarray] = []
        starts: list[int] = []
        owner: list[int] = []
        route_starts: list[int] = []
        said: list[bool] = []
        for segment, (route, units, _, covers) in enumerate(segments):
            if len(route_starts) == route:
                route_starts.append(segment)
            starts.append(len(prototypes))
            for unit in units:
                prototypes.append(_prototype(np.stack([vectors[text] for text in unit])))
                owner.append(segment)
                said.append(covers)
        matrix = np.asarray(prototypes, dtype=np.float32)
        background = self._background_embeddings()
        if unclaimed:
            # A library type (task or domain) no route of this set covers is, for this set,
            # one more kind of "none of these": its examples join the reject class (subject
            # to the same overlap rule below, so one close to a route's own words is left
            # out). Measured with the domains: CLINC out-of-scope recall 52% -> 57% (shared
            # descriptions), in scope -0.2 points; tasks_dev unchanged.
            background = np.vstack([background, self._embed_phrases(unclaimed)])
        # What the user wrote and the library says a background prompt is about a route;
        # prompts learned from traffic do not: many are generic, and would empty the
        # reject class of exactly what it must reject.
        overlap = (background @ matrix[np.asarray(said)].T).max(axis=1)
        keep = overlap < BACKGROUND_OVERLAP
        if keep.sum() < MIN_BACKGROUND:  # routes so broad that they cover the background
            keep = np.isin(np.arange(len(overlap)), np.argsort(overlap)[:MIN_BACKGROUND])
        owners = np.asarray(owner, dtype=np.intp)
        index = RouteIndex(
            names=tuple(names),
            prototypes=matrix,
            starts=np.asarray(starts, dtype=np.intp),
            owner=owners,
            counts=np.bincount(owners, minlength=len(segments)),
            route_starts=np.asarray(route_starts, dtype=np.intp),
            bias=np.asarray([bias for _, _, bias, _ in segments], dtype=np.float32),
            background=np.ascontiguousarray(background[keep]),
            mean=0.0,
            scale=1.0,
        )
        best = index.signal(index.background, leave_out_self=True).max(axis=1)
        return replace(index, mean=float(best.mean()), scale=max(float(best.std()), MIN_SCALE))

    def _borrowed(
        self, routes: Sequence[RoutePhrases]
    ) -> tuple[dict[int, list[tuple[str, ...]]], list[str]]:
        """The examples of each library type each route borrows; those of the types none does."""
        lent = lenders(routes, self._embed_phrases, self.library)
        taken = {kind for kinds in lent.values() for kind in kinds}
        borrowed = {
            route: [self.library[kind].examples for kind in kinds] for route, kinds in lent.items()
        }
        unclaimed = [
            example
            for kind, task in enumerate(self.library)
            if kind not in taken
            for example in task.examples
        ]
        return borrowed, unclaimed

    def _without_siblings_examples(
        self,
        borrowed: dict[int, list[tuple[str, ...]]],
        groups: Sequence[Sequence[tuple[str, ...]]],
    ) -> dict[int, list[tuple[str, ...]]]:
        """Each route's borrowed examples less those about another route of the set
        (SIBLING_MARGIN closer to that route's own words than to the borrower's)."""
        if len(groups) < 2 or not borrowed:
            return borrowed
        own: list[np.ndarray] = []
        of_route: list[int] = []
        for route, units in enumerate(groups):
            for unit in units:
                own.append(_prototype(self._embed_phrases(list(unit))))
                of_route.append(route)
        matrix = np.asarray(own, dtype=np.float32)
        starts = np.flatnonzero(np.diff(np.asarray(of_route), prepend=-1))
        kept: dict[int, list[tuple[str, ...]]] = {}
        for route, kinds in borrowed.items():
            for examples in kinds:
                per_route = np.maximum.reduceat(
                    self._embed_phrases(list(examples)) @ matrix.T, starts, axis=1
                )
                mine = per_route[:, route].copy()
                per_route[:, route] = -1.0
                near = per_route.max(axis=1) - mine < SIBLING_MARGIN
                kept.setdefault(route, []).append(
                    tuple(e for e, ok in zip(examples, near, strict=True) if ok)
                )
        return kept

    def _background_embeddings(self) -> np.ndarray:
        # Computed on first use, not at load: commands that never route should not pay for it.
        with self._lock:
            if self._background is None:
                self._background = self.encoder.encode(list(self.background))
            return self._background

    def _embed_phrases(self, texts: Sequence[str]) -> np.ndarray:
        return _embed_cached(self.encoder, self._phrases, texts)

    def _embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        # The previous request's latest turn is this request's context turn: usually a hit.
        return _embed_cached(self.encoder, self._queries, texts)


def _prototype(rows: np.ndarray) -> np.ndarray:
    """One unit's texts, averaged into a unit-norm prototype."""
    mean = rows.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def cached_embedding(
    encoder: Encoder, size: int = PHRASE_CACHE_SIZE
) -> Callable[[Sequence[str]], np.ndarray]:
    """encoder.encode behind an LRU of `size` texts, for callers outside a router that embed
    the same texts again and again (route lint matches every route to the library's
    signatures)."""
    cache: LRU = LRU(size)
    return lambda texts: _embed_cached(encoder, cache, texts)


def _embed_cached(encoder: Encoder, cache: LRU, texts: Sequence[str]) -> np.ndarray:
    if len(texts) == 1:  # the usual decision: one prompt, no dict or stack to build
        vector = cache.get(texts[0])
        if vector is None:
            vector = encoder.encode(texts)[0]
            vector.setflags(write=False)
            cache.put(texts[0], vector)
        return vector[None, :]
    found = {text: cache.get(text) for text in dict.fromkeys(texts)}
    missing = [text for text, vector in found.items() if vector is None]
    if missing:
        for text, vector in zip(missing, encoder.encode(missing), strict=True):
            vector.setflags(write=False)
            cache.put(text, vector)
            found[text] = vector
    return np.stack([found[text] for text in texts])
