"""The content-policy guardrail: keywords on word boundaries, regex rules, the block
message, the output side's replacement, and the guards against catastrophic patterns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.filters.builtin import build_builtin, option_problems
from proxy.filters.builtin.content_policy import MARKER, keyword_regex
from proxy.filters.verdict import Decision
from tests.linear_time import assert_linear

OPTIONS = {
    "rules": [
        {"keywords": ["forbidden phrase", "forbid", "secret sauce"]},
        {"pattern": r"(?i)\bproject\s+x\b"},
    ],
    "message": "Not allowed by policy.",
}

# (text, blocked)
CASES = [
    ("this has a FORBIDDEN   phrase in it", True),
    ("we forbid it", True),
    ("the Secret Sauce recipe", True),
    ("about Project X launch", True),
    ("unforbidden phrases are fine", False),  # word boundaries
    ("forbidden phrasebook", False),
    ("project xylophone", False),
    ("nothing here", False),
]


@pytest.mark.parametrize(("text", "blocked"), CASES)
def test_labeled_cases(text, blocked):
    f = build_builtin("content_policy", OPTIONS)
    verdict = f.check_request({"messages": [{"role": "user", "content": text}]}, "openai_chat", {})
    assert (verdict.decision is Decision.BLOCK) == blocked
    if blocked:
        assert verdict.status == 400
        assert verdict.message == "Not allowed by policy."


def test_output_replaces_matches_split_across_deltas():
    transform = build_builtin("content_policy", OPTIONS).answer({})
    deltas = ["Here is the sec", "ret sa", "uce and project", " x. Done."]
    out = "".join(transform.feed(d) for d in deltas) + transform.flush()
    assert out == f"Here is the {MARKER} and {MARKER}. Done."


@pytest.mark.parametrize(
    ("rules", "needle"),
    [
        ([{"pattern": "(unclosed"}], "not a regex RE2 accepts: missing )"),
        ([{"pattern": r"(a)\1"}], "back-references are not supported"),
        ([{"pattern": r"(?<!\w)x"}], "look-arounds are not supported"),
        ([{"pattern": r"x(?=y)"}], "look-arounds are not supported"),
        ([{"pattern": "x*"}], "empty string"),
        ([{"keywords": []}], "keywords"),
        ([{"keywords": ["a"], "pattern": "b"}], "either"),
        ([], "rules"),
    ],
)
def test_option_problems(rules, needle):
    problems = option_problems("content_policy", {"rules": rules})
    assert any(needle in p for p in problems), problems


def test_wrong_kinds_options_are_named():
    assert any(
        "action" in p for p in option_problems("content_policy", {**OPTIONS, "action": "block"})
    )


def test_keyword_trie_handles_prefixes():
    regex = keyword_regex(["ab", "abc", "a b"])
    assert [m.group() for m in regex.finditer("abc ab a  b abd")] == ["abc", "ab", "a  b"]


@given(st.text(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_any_text_never_raises_and_output_holds_back_a_bounded_tail(text, cuts):
    f = build_builtin("content_policy", OPTIONS)
    f.check_request({"messages": [{"role": "user", "content": text}]}, "openai_chat", {})
    transform = f.answer({})
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    out = "".join(transform.feed(p) for p in pieces) + transform.flush()
    whole = build_builtin("content_policy", OPTIONS).answer({})
    assert out == whole.feed(text) + whole.flush()  # however the stream was cut


def test_rule_index_is_named_in_a_refused_pattern():
    rules = [{"keywords": ["a"]}, {"pattern": r"(?<=a)b"}]
    problems = option_problems("content_policy", {"rules": rules})
    assert len(problems) == 1
    assert problems[0].startswith("option 'rules[1]': pattern '(?<=a)b'")


def test_catastrophic_patterns_for_backtracking_are_accepted_and_match():
    # Refused before RE2 (nested repeat) or seconds per KB with `re`: fine now.
    assert option_problems("content_policy", {"rules": [{"pattern": r"(\s*)*x"}]}) == []
    f = build_builtin(
        "content_policy", {"rules": [{"pattern": r"(\s*)*x"}, {"pattern": r"\s*\s*\s*y"}]}
    )
    body = {"messages": [{"role": "user", "content": " " * 5000 + "y"}]}
    assert f.check_request(body, "openai_chat", {}).decision is Decision.BLOCK


def test_a_match_longer_than_the_old_windows_is_found_whole():
    f = build_builtin("content_policy", {"rules": [{"pattern": r"BEGIN[^!]*END"}]})
    text = "BEGIN" + "." * 5000 + "END"
    assert f.spans("pre " + text) == [(4, 4 + len(text), MARKER)]


@pytest.mark.parametrize("pattern", [r"(\s*)*x", r"\s*\s*\s*x", r"(a|a?)+b"])
def test_hostile_text_costs_linear_time(pattern):
    # Each is polynomial or exponential under backtracking: with `re`, `\s*\s*\s*x` is
    # cubic on a run of spaces. 100 KB against 1 MB: linear is ~10x.
    f = build_builtin("content_policy", {"rules": [{"pattern": pattern}]})

    def hostile(size: int) -> str:
        return (" " * 999 + "a") * (size // 1000)

    assert_linear(f.matches, hostile, small=100_000, large=1_000_000, what=pattern)
    assert_linear(f.spans, hostile, small=100_000, large=1_000_000, what=pattern)
