"""Prompt injection and jailbreak detection, offline: cheap heuristics, then the embedded
encoder for what they leave open.

Only the text the client controls is scored: user turns and tool results (a tool result
is where an indirect injection arrives). The system prompt and earlier assistant turns are
the application's own.

A prompt's score (0..1) is the larger of two:
- heuristics (injection_rules.py): instruction-override phrases, system-prompt
  exfiltration, role-play jailbreak templates, chat-template delimiters, orders aimed at
  an agent inside a document, fake system messages and authority, the main families in
  eight languages besides English (injection_i18n.py), and the text's decoded readings:
  base64 and hex payloads, look-alike letters, leetspeak, spaced-out letters, reversed
  text and ROT13 (injection_decode.py), each scanned again;
- similarity: all-MiniLM-L6-v2 (the embedded router's encoder, loaded lazily on first use)
  embeds the text in windows of about WINDOW_CHARS characters; each window's best cosine
  to the built-in attack patterns (data/injection_patterns.json) minus its best cosine to
  the built-in risky-but-benign patterns is mapped through a logistic.
  The encoder runs only on text where the lexical gate (injection_rules.GATE) finds the
  vocabulary attacks use and the heuristics have not already decided: most prompts never
  reach it, which keeps the median cost far under one encode (~3.5 ms on 2 cores).

A score at or above the threshold (default 0.5) blocks with status 400. The rates at the
default on the held-out sets are in docs/guardrails.md (`python bench/injection.py --eval`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from proxy.filters import texts
from proxy.filters.builtin import injection_rules as rules
from proxy.filters.builtin.base import AnswerTransform
from proxy.filters.builtin.common import blocked, check_deadline, modified, unknown_options
from proxy.filters.verdict import Verdict

if TYPE_CHECKING:
    import numpy as np

    from proxy.routing.embedded.encoder import Encoder

log = logging.getLogger("plano.filters")

OPTIONS = ("threshold",)
DEFAULT_THRESHOLD = 0.5
WINDOW_CHARS = 400
WINDOW_STEP = 300
# At most this many windows are embedded per request (the ones the gate marks, first to
# last); a longer prompt is still scanned whole by the heuristics.
MAX_WINDOWS = 16
PIECE_CHARS = 16 * 1024
PIECE_OVERLAP = 2 * 1024
# The logistic from (attack similarity - benign similarity) to a score, fitted on the
# development set (tests/data/injection_dev.jsonl), never on the evaluation sets.
SIM_CENTER = 0.2
SIM_SCALE = 25.0


def option_problems(options: Mapping[str, Any]) -> list[str]:
    problems = unknown_options("prompt_injection", options, OPTIONS)
    threshold = options.get("threshold", DEFAULT_THRESHOLD)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 <= threshold <= 1
    ):
        problems.append(f"option 'threshold' must be a number from 0 to 1, not {threshold!r}")
    return problems


@dataclass(frozen=True, slots=True)
class Score:
    value: float  # 0..1
    reason: str  # the heuristic that fired, or "similar to: <pattern>", or ""
    encoded: bool  # whether the encoder ran


class Detector:
    """Scores text; the encoder and the patterns' embeddings load on first need."""

    def __init__(self, encoder: Encoder | None = None) -> None:
        self._encoder = encoder
        self._lock = threading.Lock()
        self._patterns: tuple[np.ndarray, np.ndarray, list[str]] | None = None

    def score(self, text: str, enough: float = 0.9) -> Score:
        """The text's score; the encoder is skipped once the heuristics reach `enough`
        (the filter passes its threshold: a block needs no second opinion)."""
        heuristic, reason = _heuristic(text, enough)
        if heuristic >= enough or not rules.GATE.search(text):
            return Score(heuristic, reason, False)
        similarity, nearest = self.similarity(rules.unquoted(text))
        if similarity > heuristic:
            return Score(similarity, f"similar to: {nearest}", True)
        return Score(heuristic, reason, True)

    def similarity(self, text: str) -> tuple[float, str]:
        """The encoder's score of the text's gated windows and the nearest attack pattern."""
        windows = [w for w in _windows(text) if rules.GATE.search(w)][:MAX_WINDOWS]
        if not windows:
            return 0.0, ""
        attacks, benign, names = self._load()
        embeddings = self._encoder.encode(windows)  # type: ignore[union-attr]
        to_attacks = embeddings @ attacks.T
        margin = to_attacks.max(axis=1) - (embeddings @ benign.T).max(axis=1)
        best = int(margin.argmax())
        value = 1.0 / (1.0 + math.exp(-SIM_SCALE * (float(margin[best]) - SIM_CENTER)))
        return value, names[int(to_attacks[best].argmax())]

    def warm(self) -> None:
        """Load the encoder and embed the patterns now (the server's start-up), not on the
        first request."""
        self._load()

    @property
    def loaded(self) -> bool:
        """Whether the encoder and the patterns' embeddings are loaded."""
        return self._patterns is not None

    def _load(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        if self._patterns is None:
            with self._lock:
                if self._patterns is None:
                    if self._encoder is None:
                        self._encoder = shared_encoder()
                    data = patterns()
                    attacks = self._encoder.encode(data["attack"])
                    benign = self._encoder.encode(data["benign"])
                    self._patterns = (attacks, benign, data["attack"])
        return self._patterns


_ENCODER: Encoder | None = None
_ENCODER_LOCK = threading.Lock()


def shared_encoder() -> Encoder:
    """One all-MiniLM-L6-v2 encoder for every injection filter of the process."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            from proxy.routing.embedded.encoder import Encoder
            from proxy.routing.embedded.weights import find_model

            _ENCODER = Encoder.load(find_model())
        return _ENCODER


def patterns() -> dict[str, list[str]]:
    """The detector's built-in patterns: {"attack": [...], "benign": [...]}."""
    raw = (
        resources.files("proxy.filters.builtin")
        .joinpath("data/injection_patterns.json")
        .read_text("utf-8")
    )
    return json.loads(raw)


def _windows(text: str) -> list[str]:
    """`text` in overlapping windows of about WINDOW_CHARS, cut at whitespace."""
    text = text.strip()
    if len(text) <= WINDOW_CHARS:
        return [text] if text else []
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + WINDOW_CHARS)
        if end < len(text):
            space = text.rfind(" ", start + WINDOW_STEP // 2, end)
            end = space if space > start else end
        out.append(text[start:end])
        if end >= len(text):
            break
        nxt = text.find(" ", start + WINDOW_STEP, end)
        start = (nxt + 1) if nxt > start else end
    return out


def _heuristic(text: str, enough: float) -> tuple[float, str]:
    """rules.heuristic_score, on a long text piece by piece: each regex search then holds
    the GIL for a piece, not for the whole text, so the event loop runs on while a large
    request is scored in a worker thread, and the scoring stops at the filter's deadline.
    The pieces overlap by more than any rule's match spans."""
    if len(text) <= PIECE_CHARS:
        return rules.heuristic_score(text)
    best, reason = 0.0, ""
    for start in range(0, len(text), PIECE_CHARS - PIECE_OVERLAP):
        check_deadline()
        score, why = rules.heuristic_score(text[start : start + PIECE_CHARS])
        if score > best:
            best, reason = score, why
            if best >= enough:
                break
    return best, reason


_DETECTOR: Detector | None = None


def shared_detector() -> Detector:
    global _DETECTOR
    if _DETECTOR is None:
        _DETECTOR = Detector()
    return _DETECTOR


class InjectionFilter:
    kind = "prompt_injection"
    # Never on the event loop: a prompt with the gate's words runs the encoder (a few ms a
    # window, up to MAX_WINDOWS), and the heuristics take 4-9 ms a KiB (to 540 ms at 63 KiB).
    inline_bytes = 0

    def __init__(
        self, threshold: float = DEFAULT_THRESHOLD, detector: Detector | None = None
    ) -> None:
        self.threshold = float(threshold)
        self.detector = detector or shared_detector()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> InjectionFilter:
        return cls(options.get("threshold", DEFAULT_THRESHOLD))

    def warm(self) -> None:
        self.detector.warm()

    def score_body(self, body: Any, api: str) -> Score:
        """The highest score of the body's user-controlled texts."""
        best = Score(0.0, "", False)
        for slot in texts.slots(body, api):
            if slot.role in texts.USER_CONTROLLED:
                score = self.detector.score(slot.text, min(self.threshold, 0.9))
                if score.value > best.value:
                    best = score
                if best.value >= self.threshold:
                    break
        return best

    def check_request(self, body: dict, api: str, state: dict) -> Verdict:
        score = self.score_body(body, api)
        if score.value < self.threshold:
            return modified(body, body)
        return blocked(
            f"The request looks like a prompt injection or jailbreak attempt "
            f"(score {score.value:.2f}, {score.reason})."
        )

    def answer(self, state: dict) -> AnswerTransform | None:
        return None  # input only
