"""The PII guardrail as a filter (proxy/filters/builtin/pii_filter.py): redact, anonymize
with the answer restored however a stream cuts it, block naming kinds not values,
`entities`, and the output-side redaction with its bounded holdback."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.filters.builtin import build_builtin, option_problems
from proxy.filters.verdict import Decision

EMAIL, CARD = "jane.roe@example.com", "4111 1111 1111 1111"


def chat(text: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def test_redact_rewrites_the_text_only():
    f = build_builtin("pii", {"action": "redact"})
    verdict = f.check_request(chat(f"mail {EMAIL}, card {CARD}"), "openai_chat", {})
    assert verdict.decision is Decision.MODIFY
    assert orjson.loads(verdict.body) == chat("mail [EMAIL], card [CARD]")


def test_nothing_found_passes():
    f = build_builtin("pii", {})
    assert f.check_request(chat("nothing here"), "openai_chat", {}).decision is Decision.PASS


def test_block_names_the_kinds_never_the_values():
    f = build_builtin("pii", {"action": "block"})
    verdict = f.check_request(chat(f"{EMAIL} {CARD}"), "openai_chat", {})
    assert verdict.decision is Decision.BLOCK
    assert verdict.status == 400
    assert "email" in verdict.message
    assert "card" in verdict.message
    assert EMAIL not in verdict.message
    assert "4111" not in verdict.message


def test_entities_limit_the_detectors():
    f = build_builtin("pii", {"entities": ["email"]})
    verdict = f.check_request(chat(f"{EMAIL} {CARD}"), "openai_chat", {})
    assert orjson.loads(verdict.body)["messages"][0]["content"] == f"[EMAIL] {CARD}"


def test_anonymize_then_the_answer_is_restored():
    f = build_builtin("pii", {"action": "anonymize"})
    state: dict = {}
    body = {
        "system": f"owner {EMAIL}",
        "messages": [{"role": "user", "content": f"write to {EMAIL}"}],
    }
    verdict = f.check_request(body, "anthropic_messages", state)
    sent = orjson.loads(verdict.body)
    assert sent["system"] == "owner <EMAIL_1>"
    assert sent["messages"][0]["content"] == "write to <EMAIL_1>"
    restore = f.answer(state)
    out = (
        "".join(restore.feed(d) for d in ["Sure, I wrote to <EMA", "IL_1", ">."]) + restore.flush()
    )
    assert out == f"Sure, I wrote to {EMAIL}."


def test_anonymize_builds_one_anonymizer_per_request(monkeypatch):
    """Calls sharing a request's state (an agent's chain and the listener's) share its
    anonymizer: one placeholder per value, and no anonymizer built per call."""
    from proxy.filters.builtin import pii

    made: list[object] = []
    real = pii.Anonymizer

    def counted(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(pii, "Anonymizer", counted)
    f = build_builtin("pii", {"action": "anonymize"})
    state: dict = {}
    first = orjson.loads(f.check_request(chat(f"to {EMAIL}"), "openai_chat", state).body)
    second = orjson.loads(f.check_request(chat(f"cc {EMAIL}"), "openai_chat", state).body)
    assert len(made) == 1
    assert first["messages"][0]["content"] == "to <EMAIL_1>"
    assert second["messages"][0]["content"] == "cc <EMAIL_1>"


def test_anonymize_without_personal_data_needs_no_answer_transform():
    f = build_builtin("pii", {"action": "anonymize"})
    state: dict = {}
    f.check_request(chat("hello"), "openai_chat", state)
    assert f.answer(state) is None


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_anonymize_restore_round_trips_through_any_chunking(cuts):
    f = build_builtin("pii", {"action": "anonymize"})
    state: dict = {}
    text = f"a {EMAIL} b {CARD} c {EMAIL} <EMAIL_9> d"
    anonymized = orjson.loads(f.check_request(chat(text), "openai_chat", state).body)["messages"][
        0
    ]["content"]
    restore = f.answer(state)
    points = sorted({min(c, len(anonymized)) for c in cuts})
    pieces = [
        anonymized[a:b] for a, b in zip([0, *points], [*points, len(anonymized)], strict=True)
    ]
    assert "".join(restore.feed(p) for p in pieces) + restore.flush() == text


@given(st.lists(st.integers(min_value=0, max_value=80), max_size=8))
def test_output_redaction_catches_values_split_across_deltas(cuts):
    f = build_builtin("pii", {})
    answer = f"Your card {CARD} and mail {EMAIL} are on file."
    points = sorted({min(c, len(answer)) for c in cuts})
    pieces = [answer[a:b] for a, b in zip([0, *points], [*points, len(answer)], strict=True)]
    transform = f.answer({})  # never ran on the request: the output filter
    out = "".join(transform.feed(p) for p in pieces) + transform.flush()
    assert out == "Your card [CARD] and mail [EMAIL] are on file."


@given(st.lists(st.text(max_size=200), max_size=10))
def test_output_redaction_of_any_text_never_raises_and_stays_bounded(deltas):
    transform = build_builtin("pii", {}).answer({})
    held = 0
    total = 0
    for delta in deltas:
        total += len(delta)
        held = total - len(transform.feed(delta))  # not exact with replacements: a bound
        assert len(transform._held) <= 2 * 160 + len(delta)
    transform.flush()
    assert held <= total


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"action": "shred"}, "action"),
        ({"entities": ["email", "dna"]}, "entities"),
        ({"entities": []}, "entities"),
        ({"threshold": 0.5}, "threshold"),
    ],
)
def test_option_problems_name_the_option(options, needle):
    problems = option_problems("pii", options)
    assert problems
    assert needle in problems[0]


def test_valid_options_have_no_problems():
    assert (
        option_problems(
            "pii",
            {
                "id": "p",
                "type": "builtin",
                "kind": "pii",
                "action": "anonymize",
                "entities": ["EMAIL", "api_key"],
            },
        )
        == []
    )
