"""Agentic signals: a model-free read of how a conversation with an agent is going.

`analyze(messages, response)` finds upstream Plano's taxonomy of 7 groups and 25 types
(`signal_rules.GROUPS`; the issue says 26, but its list and upstream's enum have 25) with
regexes, token-set overlap and tool-call comparisons, and sums them into a quality label,
a 0..100 score and an efficiency. It is pure, English only, and meant to run off the
request path over finished exchanges and stored traces.

Where the evidence comes from:
- user messages: misalignment, disengagement and satisfaction phrases; code blocks and
  quoted lines are removed first, since they are pasted material, not the user speaking;
- user and assistant messages: repetition and rephrase by token overlap with the last two
  messages of the same role; the number of user turns (dragging, efficiency);
- tool results: execution failures and environment causes, but only in results whose
  head or tail reads as an error;
- assistant tool calls, one step per assistant message: identical steps (retry), the same
  tools with new arguments (parameter_drift), steps that come back (oscillation);
- the gateway's own outcome (`status`, `error`) and the response's tool-call JSON:
  environment exhaustion, at index `len(messages)`, where the response would be.

Scoring (weights in `signal_rules`): start at 60, add weight x confidence per signal,
cap each group's total, clamp to 0..100, then band: >=85 excellent, >=68 good,
>=45 neutral, >=25 poor, else severe. No signals at all is 60, "neutral".
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from proxy.telemetry import signal_rules as R
from proxy.telemetry.signal_rules import Quality

_ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class Signal:
    type: str
    group: str
    message_index: int
    confidence: float  # 0..1
    snippet: str  # <= 120 characters of the message, whitespace collapsed

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "group": self.group,
            "message_index": self.message_index,
            "confidence": self.confidence,
            "snippet": self.snippet,
        }


@dataclass(frozen=True, slots=True)
class SignalReport:
    signals: tuple[Signal, ...] = ()
    quality: Quality = "neutral"
    score: int = R.BASE_SCORE
    turn_count: int = 0
    efficiency: float = 1.0
    counts_by_group: dict[str, int] = field(default_factory=lambda: dict.fromkeys(R.GROUPS, 0))

    def types(self) -> set[str]:
        return {s.type for s in self.signals}

    def of_type(self, type_: str) -> list[Signal]:
        return [s for s in self.signals if s.type == type_]

    def as_dict(self) -> dict[str, Any]:
        return {
            "quality": self.quality,
            "score": self.score,
            "turn_count": self.turn_count,
            "efficiency": self.efficiency,
            "counts_by_group": dict(self.counts_by_group),
            "signals": [s.as_dict() for s in self.signals],
        }

    def as_json(self) -> str:
        return orjson.dumps(self.as_dict()).decode()


# --- input normalisation --------------------------------------------------------------


# Internal records are NamedTuples: a frozen dataclass's __init__ costs ~4x more, and
# there are one or two of these per message.


class _Call(NamedTuple):
    name: str
    args: str  # canonical JSON (sorted keys) when it parses, else the raw text
    valid: bool


class _Msg(NamedTuple):
    index: int
    role: str
    text: str  # already clipped to head + tail
    low: str  # text.lower(): every pattern runs on it
    calls: tuple[_Call, ...] = ()

    @property
    def source(self) -> str:
        """Where snippets come from: the text, unless lower-casing moved the offsets."""
        return self.text if len(self.text) == len(self.low) else self.low


def _clip(text: str) -> str:
    if len(text) <= R.SCAN_HEAD + R.SCAN_TAIL:
        return text
    return text[: R.SCAN_HEAD] + "\n" + text[-R.SCAN_TAIL :]


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    text = part.get("text") if isinstance(part, dict) else getattr(part, "text", None)
    return text if isinstance(text, str) else ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        return "".join(_part_text(p) for p in content)
    return ""


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # not JSON-able (an object from a caller's own tool layer)
        return str(value)


def _canonical_args(args: Any) -> tuple[str, bool]:
    """Sorted-key JSON, so that the same arguments in another key order compare equal."""
    if isinstance(args, dict | list):
        return _dump(args), True
    if not isinstance(args, str):
        return ("{}", True) if args is None else (str(args), False)
    if not args.strip():
        return "{}", True
    try:
        parsed = orjson.loads(args)
    except orjson.JSONDecodeError:
        return args[: R.SCAN_HEAD], False
    return _dump(parsed), True


def _call(raw: Any) -> _Call | None:
    if isinstance(raw, dict):
        fn = raw.get("function") if isinstance(raw.get("function"), dict) else raw
        name, args = fn.get("name"), fn.get("arguments", fn.get("input"))
    else:
        name, args = getattr(raw, "name", None), getattr(raw, "arguments", None)
    if not isinstance(name, str):
        return None
    canonical, valid = _canonical_args(args)
    return _Call(name, canonical, valid)


def _field(raw: Any, key: str) -> Any:
    """A key of an OpenAI-style dict, or an attribute of a canonical message."""
    return raw.get(key) if isinstance(raw, dict) else getattr(raw, key, None)


def _message(raw: Any, index: int, role: str | None = None) -> _Msg | None:
    if raw is None:
        return None
    role = role or _field(raw, "role")
    role = "tool" if role == "function" else role
    if not isinstance(role, str) or role not in _ROLES:
        return None
    raw_calls = _field(raw, "tool_calls")
    raw_calls = raw_calls if isinstance(raw_calls, list | tuple) else ()
    calls = tuple(c for c in map(_call, raw_calls) if c is not None)
    text = _clip(_content_text(_field(raw, "content")))
    return _Msg(index, role, text, _lower(text), calls)


def _response_message(response: Any, index: int) -> _Msg | None:
    if isinstance(response, dict) and isinstance(response.get("choices"), list):
        choices = response["choices"]
        response = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    return _message(response, index, role="assistant")


# --- helpers --------------------------------------------------------------------------


def _snippet(text: str, start: int = 0) -> str:
    begin = 0 if start <= 60 else start - 30
    return " ".join(text[begin : begin + 2 * R.SNIPPET_MAX].split())[: R.SNIPPET_MAX]


def _lower(text: str) -> str:
    # A curly apostrophe (U+2019) would hide "isn't" from every pattern; same length.
    return text.lower().replace("\u2019", "'")


@lru_cache(maxsize=R.CACHE_SIZE)
def _tokens(low: str) -> frozenset[bytes]:
    if len(low) > R.SIMILARITY_SPAN:  # head and tail are enough to tell a repeat
        half = R.SIMILARITY_SPAN // 2
        low = f"{low[:half]} {low[-half:]}"
    return frozenset(low.encode().translate(R.TOKEN_TABLE).split())


class _Found:
    """Signals keyed by (type, message index), keeping the most confident of each."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, int], Signal] = {}

    def add(self, type_: str, index: int, confidence: float, text: str, start: int = 0) -> None:
        """`text` and `start` locate the snippet, cut only if this signal is kept."""
        key = (type_, index)
        confidence = round(min(max(confidence, 0.0), 1.0), 3)
        if key in self.by_key and self.by_key[key].confidence >= confidence:
            return
        snippet = _snippet(text, start)
        self.by_key[key] = Signal(type_, R.GROUP_OF[type_], index, confidence, snippet)

    def sorted(self) -> tuple[Signal, ...]:
        return tuple(
            sorted(self.by_key.values(), key=lambda s: (s.message_index, R.TYPE_ORDER[s.type]))
        )


# --- detectors ------------------------------------------------------------------------

_POSITIVE = frozenset(R.GROUPS["satisfaction"])


class _SentenceEnds:
    """Where the sentences of a text end, found once: looking for the end after each
    candidate phrase scanned the rest of the sentence each time, quadratic in a long one
    ("thanks anyway thanks anyway ...")."""

    __slots__ = ("_ends", "_text")

    def __init__(self, text: str):
        self._text = text
        self._ends: list[int] | None = None

    def asks(self, position: int) -> bool:
        """Whether the sentence around `position` ends with a question mark."""
        if self._ends is None:
            self._ends = [m.start() for m in R.SENTENCE_ENDS.finditer(self._text)]
        i = bisect_left(self._ends, position)
        return i < len(self._ends) and self._text[self._ends[i]] == "?"


def _accept(
    type_: str, text: str, start: int, end: int, after_question: bool, ends: _SentenceEnds
) -> bool:
    if type_ == "correction" and after_question and text[start:end].lstrip() == "no":
        return False  # "no" answering the assistant's yes/no question
    if type_ not in _POSITIVE:
        return True
    if R.NEGATION_BEFORE.search(text[max(0, start - 40) : start]):
        return False
    if ends.asks(end):  # "is that right?" asks, not confirms
        return False
    around = text[max(0, start - 12) : end + 15]
    return not (type_ == "gratitude" and R.NOT_GRATITUDE.search(around))


def _shouting(text: str) -> bool:
    if not R.CAPS_RUN.search(text):
        return False
    words = R.CAPS_WORD.findall(text)
    caps = sum(1 for w in words if w.isupper())
    return caps >= 3 and caps >= 0.7 * len(words)


# A conversation is analysed again at each turn, with one more exchange: the per-message
# work is cached on the message's text, so a re-analysis costs about the new messages.
Hit = tuple[str, float, int]  # type, confidence, offset of the match in the snippet text


@lru_cache(maxsize=R.CACHE_SIZE)
def _user_hits(text: str, after_assistant: bool, after_question: bool) -> tuple[Hit, ...]:
    low = _lower(text)
    tokens = _tokens(low)
    candidates = set(R.USER_ALWAYS)
    for word in tokens & R.USER_TRIGGER_WORDS:
        candidates.update(R.USER_TRIGGERS[word])
    hits: dict[str, tuple[float, int]] = {}
    ends = _SentenceEnds(low)
    for rule in (R.USER_RULES[i] for i in sorted(candidates)):  # in order: strong rules first
        if rule.type in R.REACTIONS and not after_assistant:
            continue
        if rule.type in hits and hits[rule.type][0] >= rule.confidence:
            continue
        for match in rule.pattern.finditer(low):
            if _accept(rule.type, low, match.start(), match.end(), after_question, ends):
                hits[rule.type] = (rule.confidence, match.start())
                break
    if "negative_stance" not in hits and _shouting(text):
        hits["negative_stance"] = (0.6, 0)
    spoiled = not R.SPOILS_SATISFACTION.isdisjoint(hits)
    return tuple(
        (type_, confidence, start)
        for type_, (confidence, start) in hits.items()
        if not (spoiled and type_ in _POSITIVE)
    )


def _user_signals(msg: _Msg, after_assistant: bool, after_question: bool, found: _Found) -> None:
    text = msg.source
    if "`" in text or ">" in text:
        text = R.CODE_RE.sub(" ", text)
    if len(_lower(text)) != len(text):
        text = _lower(text)  # keep match offsets valid for the snippet
    for type_, confidence, start in _user_hits(text, after_assistant, after_question):
        found.add(type_, msg.index, confidence, text, start)


def _similarity(a: frozenset[bytes], b: frozenset[bytes], floor: float, least: int) -> float:
    """Jaccard of two token sets of `least` tokens or more, or 0.0 if it must be below
    `floor`: sizes alone bound it by min/max, which spares most set intersections."""
    small, large = (len(a), len(b)) if len(a) <= len(b) else (len(b), len(a))
    if small < least or small < floor * large:
        return 0.0
    shared = len(a & b)
    return shared / (small + large - shared)


def _similarity_signals(msgs: Sequence[_Msg], found: _Found) -> None:
    earlier: dict[str, list[tuple[int, frozenset[bytes], frozenset[bytes]]]] = {
        "user": [],
        "assistant": [],
    }
    last_assistant = -1
    for msg in msgs:
        if msg.role not in earlier or not msg.text.strip():
            if msg.role == "assistant":
                last_assistant = msg.index
            continue
        tokens = _tokens(msg.low)
        content = tokens - R.STOPWORDS_BYTES if msg.role == "user" else tokens
        best_repeat, best_rephrase = 0.0, 0.0
        for prev_index, prev_tokens, prev_content in earlier[msg.role][-R.LOOKBACK :]:
            repeat = _similarity(tokens, prev_tokens, R.REPETITION_MIN, R.MIN_TOKENS_REPEAT)
            best_repeat = max(best_repeat, repeat)
            if msg.role == "user" and prev_index < last_assistant:  # answered in between
                rephrase = _similarity(content, prev_content, R.REPHRASE_MIN, R.MIN_TOKENS_REPHRASE)
                best_rephrase = max(best_rephrase, rephrase)
        if best_repeat >= R.REPETITION_MIN:
            found.add("repetition", msg.index, best_repeat, msg.text)
        elif best_rephrase >= R.REPHRASE_MIN:
            found.add("rephrase", msg.index, best_rephrase, msg.text)
        earlier[msg.role].append((msg.index, tokens, content))
        if msg.role == "assistant":
            last_assistant = msg.index


def _reads_as_failure(low: str) -> bool:
    if len(low) <= 2 * R.HINT_SPAN:
        return R.FAILURE_HINT.search(low) is not None
    return bool(
        R.FAILURE_HINT.search(low[: R.HINT_SPAN]) or R.FAILURE_HINT.search(low[-R.HINT_SPAN :])
    )


@lru_cache(maxsize=R.CACHE_SIZE)
def _tool_hit(low: str) -> tuple[str | None, int, bool]:
    """(failure type or None, offset of its match, whether the result reads as a failure)."""
    if not _reads_as_failure(low):
        return None, 0, False
    for rule in R.TOOL_RULES:
        match = rule.search(low)
        if match:
            return rule.type, match.start(), True
    return None, 0, True


def _tool_signal(msg: _Msg, found: _Found) -> bool:
    """Records the failure a tool result shows; True if it reads as a failure at all."""
    type_, start, failed = _tool_hit(msg.low)
    if type_ is not None:
        found.add(type_, msg.index, 0.8, msg.source, start)
    return failed


class _Step(NamedTuple):
    """One assistant message's tool calls and whether any of their results failed."""

    index: int
    names: tuple[str, ...]
    args: tuple[str, ...]
    failed: bool

    @property
    def signature(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.names, self.args

    def snippet(self) -> str:
        return ", ".join(f"{n}({a})" for n, a in zip(self.names, self.args, strict=True))


def _loop_signals(steps: Sequence[_Step], found: _Found) -> None:
    """Each run is reported once, at the step that starts it; a longer run only raises
    the confidence."""
    if len(steps) < 2:
        return
    retry_run = drift_run = osc_run = 0
    retry_start = drift_start = osc_start = steps[0]
    for i in range(1, len(steps)):
        step, prev = steps[i], steps[i - 1]
        if step.signature == prev.signature:
            retry_run += 1
            retry_start = step if retry_run == 1 else retry_start
            if prev.failed or retry_run >= 2:  # a failed call repeated, or a third time
                confidence = 0.7 if retry_run == 1 else 0.95
                found.add("retry", retry_start.index, confidence, retry_start.snippet())
        else:
            retry_run = 0
        if step.names != prev.names:
            drift_run = 0
        elif step.args != prev.args:
            drift_run += 1
            drift_start = step if drift_run == 1 else drift_start
            if prev.failed or drift_run >= 2:
                confidence = 0.7 if drift_run == 1 else 0.85
                found.add("parameter_drift", drift_start.index, confidence, drift_start.snippet())
        # A -> B -> A: a step comes back after a different one. With the same tool (a value
        # set and set back) that is a loop already; with another tool it takes A B A B.
        back = i >= 2 and step.signature == steps[i - 2].signature != prev.signature
        if back and (
            prev.names == step.names or (i >= 3 and prev.signature == steps[i - 3].signature)
        ):
            osc_run += 1
            osc_start = step if osc_run == 1 else osc_start
            confidence = 0.75 if osc_run == 1 else 0.9
            found.add("oscillation", osc_start.index, confidence, osc_start.snippet())
        else:
            osc_run = 0


def _environment_signals(
    error: str | None, status: int | None, response: _Msg | None, index: int, found: _Found
) -> None:
    from_text = False
    if isinstance(error, str) and error.strip():
        text = _clip(error)
        for rule in R.ERROR_RULES:
            if rule.search(text.lower()):
                found.add(rule.type, index, 0.9, text)
                from_text = True
                break
    if isinstance(status, int) and not isinstance(status, bool) and not from_text:
        snippet = _snippet(error) if isinstance(error, str) and error.strip() else f"HTTP {status}"
        by_status = {429: "rate_limit", 408: "timeout", 504: "timeout", 413: "context_overflow"}
        if status in by_status:
            found.add(by_status[status], index, 1.0 if status != 413 else 0.7, snippet)
        elif 500 <= status < 600:
            found.add("api_error", index, 0.9, snippet)
    elif isinstance(error, str) and error.strip() and not from_text and status is None:
        found.add("api_error", index, 0.6, error)
    if response is not None:
        for call in response.calls:
            if not call.valid:
                found.add("malformed_response", index, 0.8, f"{call.name}({call.args})")
                break


# --- scoring --------------------------------------------------------------------------


def _turn_efficiency(turns: int) -> float:
    excess = max(0, turns - R.BASELINE_TURNS)
    return 1.0 / (1.0 + R.EXCESS_TURN_COST * excess)


def _score(signals: Iterable[Signal]) -> int:
    per_group: dict[str, float] = {}
    for s in signals:
        per_group[s.group] = per_group.get(s.group, 0.0) + R.WEIGHTS[s.type] * s.confidence
    total = float(R.BASE_SCORE)
    for group, value in per_group.items():
        cap = R.GROUP_CAPS[group]
        total += min(value, cap) if cap > 0 else max(value, cap)
    return max(0, min(100, round(total)))


def _quality(score: int) -> Quality:
    return next(label for floor, label in R.BANDS if score >= floor)


# --- entry point ----------------------------------------------------------------------


def clear_caches() -> None:
    """Forget the per-message results (for benchmarks of cold analysis)."""
    for cached in (_tokens, _user_hits, _tool_hit):
        cached.cache_clear()


def analyze(
    messages: Iterable[Any] | None,
    response: Any = None,
    *,
    error: str | None = None,
    status: int | None = None,
) -> SignalReport:
    """Signals of one conversation: canonical `Message`s or OpenAI-style dicts, plus the
    response (a `ChatResponse`, a message dict or a chat completion dict) if there is one.

    Never raises: input it cannot read gives an empty, neutral report.
    """
    try:
        return _analyze(list(messages or ()), response, error, status)
    except Exception:  # a stored trace of any shape must not break the analyzer thread
        return SignalReport()


def _analyze(raw: list[Any], response: Any, error: str | None, status: int | None) -> SignalReport:
    msgs = [m for m in (_message(r, i) for i, r in enumerate(raw)) if m is not None]
    reply = _response_message(response, len(raw)) if response is not None else None
    if reply is not None:
        msgs.append(reply)
    found = _Found()
    steps: list[_Step] = []
    seen_assistant = False
    last_user = -1
    turns = 0
    for pos, msg in enumerate(msgs):
        if msg.role == "user":
            turns += 1
            last_user = msg.index
            prev = msgs[pos - 1] if pos else None
            asked = prev is not None and prev.role == "assistant" and prev.text.rstrip()[-1:] == "?"
            _user_signals(msg, seen_assistant, asked, found)
        elif msg.role == "assistant":
            seen_assistant = True
            if msg.calls:
                steps.append(
                    _Step(
                        msg.index,
                        tuple(c.name for c in msg.calls),
                        tuple(c.args for c in msg.calls),
                        False,
                    )
                )
        elif msg.role == "tool" and _tool_signal(msg, found) and steps and not steps[-1].failed:
            last = steps[-1]
            steps[-1] = _Step(last.index, last.names, last.args, True)
    _similarity_signals(msgs, found)
    _loop_signals(steps, found)
    _environment_signals(error, status, reply, len(raw), found)

    turn_efficiency = _turn_efficiency(turns)
    if turn_efficiency < R.DRAGGING_BELOW and last_user >= 0:
        user_text = next(m.text for m in msgs if m.index == last_user)
        found.add("dragging", last_user, 1.0 - turn_efficiency, user_text)
    signals = found.sorted()
    loops = sum(1 for s in signals if s.group == "execution_loops" or s.type == "repetition")
    counts = dict.fromkeys(R.GROUPS, 0)
    for s in signals:
        counts[s.group] += 1
    score = _score(signals)
    return SignalReport(
        signals=signals,
        quality=_quality(score),
        score=score,
        turn_count=turns,
        efficiency=round(turn_efficiency * R.LOOP_FACTOR**loops, 3),
        counts_by_group=counts,
    )
