r"""Content policy: keyword and regex rules from the config, with a block message.

Keywords match case-insensitively on word boundaries (`forbidden phrase` does not match
inside `unforbidden phrases`), any run of whitespace standing for a space. All of a
filter's keywords compile into ONE regex shaped as a trie of their characters, so each
position of the text costs at most the longest keyword's length, however many keywords
there are: linear in the text. (`pyahocorasick` would be linear too, but is one more
compiled dependency for what the trie regex already does at these sizes.)

Patterns are compiled with RE2 (`google-re2`): matching is linear in the text whatever
the pattern, so a hostile prompt cannot make a careless pattern (`(a+)+`, `\s*\s*x`)
backtrack for seconds, and the whole text is scanned at once (no windows, no match lost
at a window's edge). RE2 has no back-references or look-arounds: `option_problems` refuses
such a pattern, naming the rule and RE2's reason. Its `\w`, `\d` and `\b` are ASCII
(`\pL` is any letter); `(?i)` folds case in every script.

Keywords stay on Python's `re`: they need a Unicode word boundary (a look-around), and
the trie regex costs a bounded amount per position whatever the text.

On input, a match anywhere in the request's text (every role) blocks it with status 400
and the configured message. In output_filters the answer cannot be refused once it is
streaming, so each match is replaced by `[BLOCKED]`, in streams and JSON answers alike
(the same answer whether or not the client streamed); the match never reaches the client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import re2

from proxy.filters import texts
from proxy.filters.builtin.base import AnswerTransform
from proxy.filters.builtin.common import RAN, blocked, modified, unknown_options
from proxy.filters.builtin.holdback import HoldbackRewriter
from proxy.filters.verdict import Verdict

OPTIONS = ("rules", "message")
DEFAULT_MESSAGE = "This request is not allowed by the content policy."
MARKER = "[BLOCKED]"
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
        regex = compile_pattern(pattern)
    except re2.error as exc:
        return [f"pattern {pattern!r} is not a regex RE2 accepts: {_re2_reason(exc)}"]
    if regex.search("") is not None:
        return [f"pattern {pattern!r} matches the empty string: it would block every request"]
    return []


def compile_pattern(pattern: str) -> Any:
    """A rule's pattern as RE2 compiles it (raises `re2.error`)."""
    options = re2.Options()
    options.log_errors = False  # the reason reaches the user through option_problems
    return re2.compile(pattern, options)


def _re2_reason(exc: re2.error) -> str:
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    reason = str(reason)
    if re.search(r"invalid perl operator: \(\?<?[=!]", reason):
        return f"{reason} (look-arounds are not supported: RE2 matches in linear time)"
    if "invalid escape sequence: \\" in reason and reason[-1:].isdigit():
        return f"{reason} (back-references are not supported: RE2 matches in linear time)"
    return reason


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
    inline_bytes = 64 * 1024

    def __init__(
        self, keywords: list[str], patterns: list[str], message: str = DEFAULT_MESSAGE
    ) -> None:
        self.message = message
        self._regexes: list[Any] = [compile_pattern(p) for p in patterns]
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
            found.update(_spans(regex, text))
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
        return any(regex.search(text) is not None for regex in self._regexes)

    def check_request(self, body: dict, api: str, state: dict) -> Verdict:
        state[RAN] = True
        if any(self.matches(slot.text) for slot in texts.slots(body, api)):
            return blocked(self.message)
        return modified(body, body)

    def warm(self) -> None:
        pass  # the rules are compiled when the filter is built

    def answer(self, state: dict) -> AnswerTransform | None:
        return None if state.get(RAN) else self.output()

    def output(self) -> AnswerTransform:
        return HoldbackRewriter(self.spans, OUTPUT_HOLD)


def _spans(regex: Any, text: str) -> Iterator[tuple[int, int]]:
    """The non-empty matches of `regex` (an RE2 or `re` pattern) in `text`."""
    return (m.span() for m in regex.finditer(text) if m.end() > m.start())
