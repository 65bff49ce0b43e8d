"""The built-in PII guardrail's core (proxy/filters/builtin/pii.py): labeled cases per
kind, benign look-alikes, the anonymize -> restore round trip, streamed restores cut at
any point, and linear time on hostile runs."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from linear_time import assert_linear

from proxy.filters.builtin import pii

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" + "k1L2m3N4o5P6q7R8"

# (text, kind, the value found in it)
POSITIVE = [
    ("write to john.doe@example.com today", "EMAIL", "john.doe@example.com"),
    ("first.last+tag@mail.sub.example.org", "EMAIL", "first.last+tag@mail.sub.example.org"),
    ("Contact: ops@example.io.", "EMAIL", "ops@example.io"),
    ("call +44 20 7946 0958 now", "PHONE", "+44 20 7946 0958"),
    ("call +33 1 23 45 67 89", "PHONE", "+33 1 23 45 67 89"),
    ("call +49-30-901820", "PHONE", "+49-30-901820"),
    ("call (415) 555-2671", "PHONE", "(415) 555-2671"),
    ("call 415-555-2671 or", "PHONE", "415-555-2671"),
    ("call 415.555.2671", "PHONE", "415.555.2671"),
    ("call +1 415 555 2671", "PHONE", "+1 415 555 2671"),
    ("card 4111111111111111 ok", "CARD", "4111111111111111"),
    ("card 4111 1111 1111 1111 exp 2027", "CARD", "4111 1111 1111 1111"),
    ("card 4111 1111 1111 1111 2027", "CARD", "4111 1111 1111 1111"),  # then a year
    ("card 5500-0000-0000-0004", "CARD", "5500-0000-0000-0004"),
    ("amex 3782 822463 10005", "CARD", "3782 822463 10005"),
    ("discover 6011111111111117.", "CARD", "6011111111111117"),
    ("iban DE89370400440532013000", "IBAN", "DE89370400440532013000"),
    ("iban DE89 3704 0044 0532 0130 00 EUR", "IBAN", "DE89 3704 0044 0532 0130 00"),
    ("to GB82 WEST 1234 5698 7654 32.", "IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("FR1420041010050500013M02606", "IBAN", "FR1420041010050500013M02606"),
    ("ssn 123-45-6789.", "SSN", "123-45-6789"),
    ("ssn 078 05 1120", "SSN", "078 05 1120"),
    ("from 192.168.1.10 to", "IP", "192.168.1.10"),
    ("dns 8.8.8.8.", "IP", "8.8.8.8"),
    ("release 1.2.3.4 is out", "IP", "1.2.3.4"),  # a valid address: documented choice
    ("host 2001:db8::8a2e:370:7334 down", "IP", "2001:db8::8a2e:370:7334"),
    ("link fe80::1ff:fe23:4567:890a.", "IP", "fe80::1ff:fe23:4567:890a"),
    ("loopback ::1 only", "IP", "::1"),
    ("mapped ::ffff:192.0.2.1 too", "IP", "::ffff:192.0.2.1"),
    ("key sk-proj-abc123DEF456ghi789 here", "API_KEY", "sk-proj-abc123DEF456ghi789"),
    ("key sk-ant-api03-abcdefGHIJ1234.", "API_KEY", "sk-ant-api03-abcdefGHIJ1234"),
    (f"token {GITHUB} here", "API_KEY", GITHUB),
    ("aws AKIAIOSFODNN7EXAMPLE here", "API_KEY", "AKIAIOSFODNN7EXAMPLE"),
    (f"jwt {JWT} here", "API_KEY", JWT),
    ("Authorization: Bearer abc123def456ghi", "API_KEY", "abc123def456ghi"),
]

# Text that looks like personal data and is not.
NEGATIVE = [
    "user@localhost and a@b.c and @handle and x@y",
    "x" * 65 + "@example.com",  # a local part longer than 64
    "on 2024-01-15 at 10:30:45, or 15/01/2024",
    "order 4111111111111112 failed",  # fails Luhn
    "order 1234567890123456",  # starts with 1: no card network
    "tracking 4111 1111 1111 1112",
    "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2 and 9780306406157",
    "id 123456789 and zip 94107-1234",  # a bare 9-digit number is not an SSN
    "000-12-3456 666-12-3456 912-34-5678 123-00-4567 123-45-0000",  # never issued
    "call 123-456-7890 or 12345 or +12",  # area code 1xx; too short
    "v1.2.3.4 and 1.2.3.4.5 and 999.1.1.1 and 10.0.0",
    "std::vector and Foo::bar and 12:30:45",
    "DE89370400440532013001 and AB12 CDEF GHIJ KLMN",  # IBAN check fails
    "a key-value-store, the key_points, skills, a bearer of news, basic idea",
    "AKIA is short, sk-short, and Bearer token",
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVE)
def test_finds_each_kind(text: str, kind: str, value: str) -> None:
    assert [(m.kind, m.value) for m in pii.find(text)] == [(kind, value)]
    match = pii.find(text)[0]
    assert text[match.start : match.end] == value
    assert pii.redact(text) == text.replace(value, f"[{kind}]")


@pytest.mark.parametrize("text", NEGATIVE)
def test_benign_look_alikes_are_left_alone(text: str) -> None:
    assert pii.find(text) == []
    assert pii.redact(text) == text


def test_matches_are_in_order_and_do_not_overlap() -> None:
    text = " ".join(value for value, _, _ in POSITIVE)
    matches = pii.find(text)
    assert len(matches) >= len(POSITIVE)
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))


def test_a_bearer_key_is_one_match() -> None:
    text = "Bearer sk-proj-abc123DEF456ghi789"
    assert pii.redact(text) == "Bearer [API_KEY]"


# --- anonymize and restore --------------------------------------------------------------

PROMPT = (
    "I am john@example.com, card 4111 1111 1111 1111, call +44 20 7946 0958. "
    "Again: john@example.com. My colleague is mary@example.com."
)


def test_anonymize_gives_stable_placeholders_and_restores() -> None:
    anonymizer = pii.Anonymizer()
    masked = anonymizer.anonymize(PROMPT)
    assert masked == (
        "I am <EMAIL_1>, card <CARD_1>, call <PHONE_1>. "
        "Again: <EMAIL_1>. My colleague is <EMAIL_2>."
    )
    # Another message of the same request: the same value, the same placeholder.
    assert anonymizer.anonymize("cc mary@example.com") == "cc <EMAIL_2>"
    assert anonymizer.restore(masked) == PROMPT
    answer = "Sure <EMAIL_1>, I wrote to <EMAIL_2>; <EMAIL_3> and <EMAIL_01> are not ours."
    assert anonymizer.restore(answer) == (
        "Sure john@example.com, I wrote to mary@example.com; <EMAIL_3> and <EMAIL_01> are not ours."
    )


def test_a_placeholder_the_user_typed_is_not_handed_out() -> None:
    anonymizer = pii.Anonymizer()
    masked = anonymizer.anonymize("literally <EMAIL_1>, mine is a@example.com")
    assert masked == "literally <EMAIL_1>, mine is <EMAIL_2>"
    assert anonymizer.restore("<EMAIL_2>") == "a@example.com"
    assert anonymizer.restore("<EMAIL_1>") == "<EMAIL_1>"


def _anonymizer_and_answer() -> tuple[pii.Anonymizer, str]:
    anonymizer = pii.Anonymizer()
    masked = anonymizer.anonymize(PROMPT)
    answer = f"<<{masked}> <EMAIL_9> <API_KEY_ <CARD_1>>< <EMAIL_1"
    return anonymizer, answer


def test_a_stream_restores_placeholders_cut_at_any_point() -> None:
    anonymizer, answer = _anonymizer_and_answer()
    whole = anonymizer.restore(answer)
    assert "john@example.com" in whole
    for cut in range(len(answer) + 1):
        restorer = anonymizer.stream_restorer()
        out = restorer.feed(answer[:cut]) + restorer.feed(answer[cut:]) + restorer.flush()
        assert out == whole, cut
    restorer = anonymizer.stream_restorer()
    assert "".join(map(restorer.feed, answer)) + restorer.flush() == whole


def test_a_stream_holds_back_only_a_possible_placeholder() -> None:
    anonymizer, _ = _anonymizer_and_answer()
    restorer = anonymizer.stream_restorer()
    assert restorer.feed("Hi <EMA") == "Hi "
    assert restorer.feed("IL_1") == ""
    assert restorer.feed("> and <b>") == "john@example.com and <b>"
    assert restorer.feed(" 2 < 3") == " 2 < 3"
    assert restorer.feed(" <API_KEY_1234567") == " <API_KEY_1234567"  # too long a number
    assert restorer.flush() == ""


@st.composite
def answers_and_cuts(draw: st.DrawFn) -> tuple[str, list[int]]:
    pieces = ["<EMAIL_1>", "<EMAIL_2>", "<CARD_1>", "<PHONE_1>", "<EMAIL_", "<", ">", "_1"]
    parts = draw(st.lists(st.sampled_from(pieces) | st.text(max_size=4), max_size=12))
    text = "".join(parts)
    cuts = draw(st.lists(st.integers(0, len(text)), max_size=8))
    return text, sorted(cuts)


@given(answers_and_cuts())
def test_any_chunking_restores_as_the_whole_text(case: tuple[str, list[int]]) -> None:
    text, cuts = case
    anonymizer = pii.Anonymizer()
    anonymizer.anonymize(PROMPT)
    restorer = anonymizer.stream_restorer()
    bounds = [0, *cuts, len(text)]
    out = "".join(restorer.feed(text[a:b]) for a, b in itertools.pairwise(bounds))
    assert out + restorer.flush() == anonymizer.restore(text)


TEXT_PIECES = [value for _, _, value in POSITIVE] + [
    " ", "<EMAIL_1>", "<", "_1>", "-", ".", "@", ":", "1", "٤", "²", "é", "\n",
]  # fmt: skip


@given(st.lists(st.sampled_from(TEXT_PIECES) | st.text(max_size=5), max_size=10).map("".join))
def test_any_text_round_trips(text: str) -> None:
    matches = pii.find(text)
    assert all(text[m.start : m.end] == m.value and m.value for m in matches)
    assert all(a.end <= b.start for a, b in itertools.pairwise(matches))
    anonymizer = pii.Anonymizer()
    assert anonymizer.restore(anonymizer.anonymize(text)) == text
    assert "[" in pii.redact(text) or not matches


# --- linear time ------------------------------------------------------------------------


def repeat(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


UNITS = [
    "a", "1", "4", "1 ", "4 ", "4-", "1-", "12-", "123-45-", "a@", "a.", "a@b.", "@a.", ".",
    ":", "0:", "a:", "a::", "1.", "1.1.", "+1 ", "+1", "(4) ", "(415) 555-", "DE89 ", "DE",
    "A1 ", "AB12", "eyJ", "eyJa.", "sk-", "sk-a1", "bearer 1", "AKIA", "ab-", "-", " ", "<",
]  # fmt: skip


@pytest.mark.parametrize("unit", UNITS)
def test_find_is_linear_on_hostile_runs(unit: str) -> None:
    assert_linear(pii.find, repeat(unit), what=f"find on {unit!r}")


@given(st.lists(st.sampled_from(UNITS) | st.text(min_size=1, max_size=3), min_size=1, max_size=5))
def test_find_is_linear_on_generated_runs(parts: list[str]) -> None:
    unit = "".join(parts)
    assert_linear(pii.find, repeat(unit), 256, 16 * 1024, what=f"find on {unit!r}")


def test_stream_restore_is_linear() -> None:
    anonymizer = pii.Anonymizer()
    anonymizer.anonymize(PROMPT)

    def stream(text: str) -> str:
        restorer = anonymizer.stream_restorer()
        return "".join(restorer.feed(text[i : i + 7]) for i in range(0, len(text), 7))

    assert_linear(stream, repeat("<EMAIL_1"), what="a stream of almost-placeholders")
