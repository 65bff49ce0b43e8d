r"""Content policy: keyword and regex rules from the config, with a block message.

Keywords match case-insensitively on word boundaries (`forbidden phrase` does not match
inside `unforbidden phrases`), any run of whitespace standing for a space. All of a
filter's keywords compile into ONE regex shaped as a trie of their characters, so each
position of the text costs at most the longest keyword's length, however many keywords
there are: linear in the text. (`pyahocorasick` would be linear too, but is one more
compiled dependency for what the trie regex already does at these sizes.)

Patterns are Python regexes compiled at start-up. Python's `re` backtracks, so a hostile
prompt could make a careless pattern take exponential time. Two guards:
- `option_problems` refuses a pattern with a repeat inside a repeat (`(a+)+`, `(\w+\s?)*`),
  the shape behind catastrophic backtracking;
- every pattern is run over windows of at most WINDOW characters (overlapping by OVERLAP),
  so a pattern that is still polynomial (`\s*\s*x` is cubic on a run of spaces) costs a
  bounded amount per window and the whole scan grows linearly with the text. The bound
  per window is still large for such a pattern (seconds): the nesting check does not
  catch adjacent repeats. RE2 (`google-re2`) would guarantee linear time but rejects
  look-arounds and back-references that users' Python patterns may have; it is not used.
  A match longer than OVERLAP that crosses a window's edge can be missed: policy
  patterns are short phrases.

On input, a match anywhere in the request's text (every role) blocks it with status 400
and the configured message. In output_filters the answer cannot be refused once it is
streaming, so each match is replaced by `[BLOCKED]`, in streams and JSON answers alike
(the same answer whether or not the client streamed); the match never reaches the client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from proxy.filters import texts
from proxy.filters.builtin.base import AnswerTransform
from proxy.filters.builtin.common import RAN, blocked, modified, unknown_options
from proxy.filters.builtin.holdback import HoldbackRewriter
from proxy.filters.verdict import Verdict

OPTIONS = ("rules", "message")
DEFAULT_MESSAGE = "This request is not allowed by the content policy."
MARKER = "[BLOCKED]"
WINDOW = 1024
OVERLAP = 128
# An answer's stream is held back this much: the longest match the output side catches
# whole when the stream cuts it.
OUTPUT_HOLD = 256
_WHITESPACE = object()  # a keyword's space: any run of whitespace


def option_problems(options: Mapping[str, Any]) -> list[str]:
    problems = unknown_options("content_policy", options, OPTIONS)
    message = options.get("message", DEFAULT_MESSAGE)
    if not isinstance(message, str) or not message.strip():
        problems.append("option 'message' must be a non-empty string")
    rules = options.get("rules")
    if not isinstance(rules, list) or not rules:
        return [
            *problems,
            "option 'rules' must be a non-empty list of {keywords: [...]} or {pattern: ...}",
        ]
    for i, rule in enumerate(rules):
        problems += [f"option 'rules[{i}]': {p}" for p in _rule_problems(rule)]
    return problems


def _rule_problems(rule: Any) -> list[str]:
    if not isinstance(rule, dict) or len(rule) != 1 or not {"keywords", "pattern"} >= rule.keys():
        return ["a rule is either {keywords: [...]} or {pattern: '...'}"]
    if "keywords" in rule:
        words = rule["keywords"]
        if not isinstance(words, list) or not words:
            return ["'keywords' must be a non-empty list of strings"]
        return [
            f"keyword {w!r} is not a non-empty string"
            for w in words
            if not isinstance(w, str) or not w.strip()
        ]
    pattern = rule["pattern"]
    if not isinstance(pattern, str) or not pattern:
        return ["'pattern' must be a non-empty string"]
    try:
        parsed = sre_parse.parse(pattern)
        re.compile(pattern)
    except re.error as exc:
        return [f"pattern {pattern!r} is not a valid regex: {exc}"]
    if _nested_repeat(parsed, inside=False):
        return [
            f"pattern {pattern!r} repeats a repeat (like (a+)+): it can take exponential "
            "time on hostile text; rewrite it without the nesting"
        ]
    if re.compile(pattern).search(""):
        return [f"pattern {pattern!r} matches the empty string: it would block every request"]
    return []


def _nested_repeat(parsed: Any, inside: bool) -> bool:
    """Whether an unbounded repeat holds another repeat (unbounded or not) below it."""
    for op, arg in parsed:
        if op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
            _, high, sub = arg
            unbounded = high == sre_parse.MAXREPEAT
            if (inside and (unbounded or high > 1)) or _nested_repeat(sub, inside or unbounded):
                return True
            continue
        if op == sre_parse.SUBPATTERN:
            children = [arg[-1]]
        elif op == sre_parse.BRANCH:
            children = arg[1]
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            children = [arg[1]]
        else:
            continue
        if any(_nested_repeat(child, inside) for child in children):
            return True
    return False


def keyword_regex(keywords: list[str]) -> re.Pattern[str] | None:
    """One regex for all keywords: a trie of their characters, on word boundaries."""
    trie: dict[Any, Any] = {}
    for keyword in keywords:
        node = trie
        for unit in _units(keyword):
            node = node.setdefault(unit, {})
        node[None] = {}  # a keyword ends here
    if not trie:
        return None
    return re.compile(r"(?<!\w)(?:" + _trie_regex(trie) + r")(?!\w)", re.IGNORECASE)


def _units(keyword: str) -> Iterator[Any]:
    previous_space = True  # leading whitespace is dropped
    for ch in keyword.strip().casefold():
        if ch.isspace():
            if not previous_space:
                yield _WHITESPACE
            previous_space = True
        else:
            yield ch
            previous_space = False


def _trie_regex(node: dict[Any, Any]) -> str:
    ends = None in node
    branches = [
        (r"\s+" if unit is _WHITESPACE else re.escape(unit)) + _trie_regex(child)
        for unit, child in node.items()
        if unit is not None
    ]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    # A keyword that is a prefix of another: try the longer one first, then stop here.
    return f"(?:{body})?" if ends else body


class ContentPolicy:
    kind = "content_policy"

    def __init__(
        self, keywords: list[str], patterns: list[str], message: str = DEFAULT_MESSAGE
    ) -> None:
        self.message = message
        self._regexes = [re.compile(p) for p in patterns]
        keyword = keyword_regex(keywords)
        if keyword is not None:
            self._regexes.insert(0, keyword)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ContentPolicy:
        keywords: list[str] = []
        patterns: list[str] = []
        for rule in options.get("rules", []):
            keywords += rule.get("keywords", [])
            if "pattern" in rule:
                patterns.append(rule["pattern"])
        return cls(keywords, patterns, options.get("message", DEFAULT_MESSAGE))

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """The matches of every rule in `text`, left to right, not overlapping."""
        found: set[tuple[int, int]] = set()
        for regex in self._regexes:
            found.update(_windowed(regex, text))
        spans: list[tuple[int, int, str]] = []
        done = 0
        for start, end in sorted(found):
            if start >= done:
                spans.append((start, end, MARKER))
                done = end
            elif end > done:  # overlapping matches merge into one
                spans[-1] = (spans[-1][0], end, MARKER)
                done = end
        return spans

    def matches(self, text: str) -> bool:
        return any(next(_windowed(regex, text), None) is not None for regex in self._regexes)

    def check_request(self, body: dict, api: str, state: dict) -> Verdict:
        state[RAN] = True
        if any(self.matches(slot.text) for slot in texts.slots(body, api)):
            return blocked(self.message)
        return modified(body, body)

    def answer(self, state: dict) -> AnswerTransform | None:
        return None if state.get(RAN) else self.output()

    def output(self) -> AnswerTransform:
        return HoldbackRewriter(self.spans, OUTPUT_HOLD)


def _windowed(regex: re.Pattern[str], text: str) -> Iterator[tuple[int, int]]:
    """The non-empty matches of `regex` in `text`, scanned WINDOW characters at a time."""
    if len(text) <= WINDOW:
        yield from (m.span() for m in regex.finditer(text) if m.end() > m.start())
        return
    done = 0  # matches must end after this (the overlap is scanned twice)
    start = 0
    while start < len(text):
        end = min(len(text), start + WINDOW)
        last = end == len(text)
        for m in regex.finditer(text, start, end):
            if not last and m.end() == end and m.start() >= end - OVERLAP:
                continue  # the window's edge may have cut it short; the next one sees it
            if m.end() > max(done, m.start()):
                yield m.span()
                done = m.end()
        if last:
            break
        start = end - OVERLAP
