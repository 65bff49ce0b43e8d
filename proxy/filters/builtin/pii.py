r"""Personal data and credentials in text: find them, redact them, or swap them for
placeholders and put the originals back in the answer (streams included).

The detector core; the filter around it (options, request bodies, answers) is pii_filter.py.

Every pattern runs on whole prompts, so each is linear in its input: a match can only
start where a run of its characters starts (a lookbehind), its runs are bounded or
possessive, and what a regex cannot tell (a checksum, a valid range) is checked in Python
on the few candidates. For speed (the goal is under 0.2 ms per KB of prompt), a pattern
begins with the character class its match starts with and checks what precedes it after
that (`[2-6](?<![\d-].)`): `re` then skips ahead to those characters instead of trying
the lookbehind at every position. Rare literals (`@`, `eyJ`, `AKIA`) are looked for first.

Deliberate choices, pinned in tests/test_pii.py:
- phone numbers are either international with a leading `+` (8 to 15 digits, E.164) or
  North American with separators (`(555) 234-5678`, `555-234-5678`); a bare run of digits
  is not a phone number (it is an order number as often). Not `phonenumbers`' matcher: it
  takes ten times the time budget (docs/benchmarks.md);
- card numbers are 13 to 19 digits, spaces or dashes allowed, starting 2-6 (the card
  networks' ranges), Luhn-checked;
- US SSNs need their separators (`123-45-6789`, `123 45 6789`): a bare 9-digit number is
  as often a zip+4 or an id; the ranges never issued (area 000, 666, 900-999, group 00,
  serial 0000) are not SSNs;
- a dotted quad that is a valid IPv4 address counts as one, even when it is a version
  number ("release 1.2.3.4"): the text cannot tell them apart, and redacting errs on the
  safe side. `v1.2.3.4` and five-part versions are not addresses;
- API keys are redact.py's key-like tokens (`sk-…`, `sk-ant-…`, 40+ character tokens
  such as `ghp_…`), AWS access key ids (`AKIA…`), JWTs and the token after `Bearer`;
  a candidate without a digit is prose (`key-value-store`), not a key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from proxy.config.redact import _BEARER, key_like_spans

EMAIL, PHONE, CARD, IBAN, SSN, IP, API_KEY = (
    "EMAIL",
    "PHONE",
    "CARD",
    "IBAN",
    "SSN",
    "IP",
    "API_KEY",
)
KINDS = (API_KEY, EMAIL, CARD, IBAN, SSN, PHONE, IP)  # also the order of preference on a tie


@dataclass(frozen=True, slots=True)
class Match:
    kind: str
    start: int
    end: int
    value: str


# An address is found from its `@`: the domain by the regex, the local part by walking
# back over at most 64 characters.
_EMAIL_DOMAIN = re.compile(r"@(?:[A-Za-z0-9-]{1,63}+\.(?=[A-Za-z0-9-]))++[A-Za-z]{2,24}+(?![\w-])")
_EMAIL_LOCAL = re.compile(r"[\w.%+-]")
_EMAIL_LOCAL_MAX = 64
# North American: an optional +1, a 3-digit area code (bracketed or not), separators.
# Found from the area code (its `(` or first digit); the optional +1 before it is then
# looked for just before the match.
_PHONE_NANP = re.compile(
    r"[(2-9](?<![\w+)][(2-9])(?:(?<=\()[2-9]\d\d\)\s?+|(?<=\d)\d\d[ .-])"
    r"[2-9]\d\d[ .-]\d{4}(?![\w-])"
)
_NANP_PREFIX = re.compile(r"(?<![\w+])\+?1[ .-]?\Z")
# International: `+`, a country code, then groups of digits with at most one separator
# between them (an area code may be bracketed).
_PHONE_INTL = re.compile(r"\+(?<![\w+].)[1-9]\d{0,3}+(?:[ .-]?+\(?+\d{1,5}+\)?+){1,6}+(?![\w-])")
# A card: 13-19 digits, single spaces or dashes between them. Bounded, so that the
# backtracking to a shorter number (a card then a year) is bounded too.
_CARD = re.compile(r"[2-6](?<![\d-].)(?:[ -]?\d){12,18}(?!\d)")
# An IBAN: country, check digits, then 11-30 letters or digits, in groups or not.
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9].)[A-Z]\d\d(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = re.compile(r"(\d(?<![\w-].)\d\d)([- ])(\d\d)\2(\d{4})(?![\w-])")
_IPV4 = re.compile(r"\d(?<![\w.].)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\w|\.\d)")
# An IPv6 address holds two colons with at most 4 hex digits between them: text without
# that (most prose) is not scanned for one.
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}+:")
# A run of hex digits, colons and dots (an IPv4 tail); ipaddress decides.
_IPV6 = re.compile(r"[0-9A-Fa-f:](?<![\w:.].)[0-9A-Fa-f:.]{1,44}+(?![\w:])")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]{4,}+\.eyJ[\w-]{4,}+\.[\w-]*+")
_DIGIT = re.compile(r"\d")
# Where `_BEARER` may match: its case-insensitive form is tried at every word boundary,
# this one skips ahead to a `b`.
_BEARER_HINT = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr]")


def find(text: str, kinds: Collection[str] = KINDS) -> list[Match]:
    """Every piece of personal data or credential in `text`, left to right, none
    overlapping (the longest wins where two start at the same place). `kinds` limits
    the detectors that run (the filter's `entities`)."""
    found: list[tuple[int, int, int]] = []  # start, -end, kind's rank
    for rank, kind in enumerate(KINDS):
        if kind not in kinds:
            continue
        found.extend((start, -end, rank) for start, end in _DETECTORS[kind](text))
    found.sort()
    matches: list[Match] = []
    done = 0
    for start, neg_end, rank in found:
        if start >= done:
            matches.append(Match(KINDS[rank], start, -neg_end, text[start:-neg_end]))
            done = -neg_end
    return matches


def redact(text: str, kinds: Collection[str] = KINDS) -> str:
    """`text` with each match replaced by its kind: `[EMAIL]`, `[CARD]`..."""
    return _replace(text, lambda match: f"[{match.kind}]", kinds)


def _replace(text: str, by: Callable[[Match], str], kinds: Collection[str] = KINDS) -> str:
    parts: list[str] = []
    done = 0
    for match in find(text, kinds):
        parts += (text[done : match.start], by(match))
        done = match.end
    parts.append(text[done:])
    return "".join(parts)


# --- detectors: (start, end) spans of checked candidates ------------------------------


def _emails(text: str) -> Iterator[tuple[int, int]]:
    if "@" not in text:
        return
    done = 0  # the local part of the next address starts after the last one
    for m in _EMAIL_DOMAIN.finditer(text):
        at = start = m.start()
        limit = max(done, at - _EMAIL_LOCAL_MAX - 1)
        while start > limit and _EMAIL_LOCAL.match(text, start - 1):
            start -= 1
        if start == at or at - start > _EMAIL_LOCAL_MAX:
            continue  # no local part, or one longer than an address may have
        yield start, m.end()
        done = m.end()


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for m in _PHONE_NANP.finditer(text):
        prefix = _NANP_PREFIX.search(text, max(0, m.start() - 3), m.start())
        yield (prefix.start() if prefix else m.start()), m.end()
    for m in _PHONE_INTL.finditer(text):
        value = m.group()
        digits = sum(ch.isdigit() for ch in value)
        if 8 <= digits <= 15 and value.count("(") == value.count(")"):
            yield m.span()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        if _luhn(m.group()):
            yield m.span()
            continue
        # A card followed by more digits ("4111 1111 1111 1111 2024"): the number ends at
        # an earlier separator. At most 6 cuts, each checked once.
        value = m.group()
        for cut in range(len(value) - 1, 12, -1):
            if value[cut] in " -" and _luhn(value[:cut]):
                yield m.start(), m.start() + cut
                break


def _luhn(number: str) -> bool:
    digits = [int(ch) for ch in number if ch.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN.finditer(text):
        value = m.group()
        # The IBAN may be followed by an upper-case word or number ("… 3000 EUR"): the
        # longest prefix that ends at a space and passes the check is the IBAN.
        cuts = [len(value)] + [i for i in range(len(value) - 1, 14, -1) if value[i] == " "]
        for cut in cuts:
            if _iban_ok(value[:cut]):
                yield m.start(), m.start() + cut
                break


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN.finditer(text):
        area, group, serial = m.group(1), m.group(3), m.group(4)
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        yield m.span()


def _ips(text: str) -> Iterator[tuple[int, int]]:
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield m.span()
    if not _IPV6_HINT.search(text):
        return
    for m in _IPV6.finditer(text):
        value = m.group()
        if value.count(":") < 2:
            continue
        end = m.end()
        if value.endswith("."):  # the end of a sentence
            value, end = value.rstrip("."), end - (len(value) - len(value.rstrip(".")))
        if value == "::":
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        yield m.start(), end


def _api_keys(text: str) -> Iterator[tuple[int, int]]:
    for start, end in key_like_spans(text):
        end = start + len(text[start:end].rstrip("."))  # the end of a sentence
        if _DIGIT.search(text, start, end):
            yield start, end
    if "AKIA" in text or "ASIA" in text:
        yield from (m.span() for m in _AWS_KEY_ID.finditer(text))
    if "eyJ" in text:
        yield from (m.span() for m in _JWT.finditer(text))
    done = 0
    for hint in _BEARER_HINT.finditer(text):
        m = hint.start() >= done and _BEARER.match(text, hint.start())
        if not m:
            continue
        done = m.end()
        token = m.group()[m.end(1) - m.start() :].lstrip()
        if m.group(1).lower() == "bearer" and len(token) >= 8 and _DIGIT.search(token):
            yield m.end() - len(token), m.end()


_DETECTORS: dict[str, Callable[[str], Iterator[tuple[int, int]]]] = {
    API_KEY: _api_keys,
    EMAIL: _emails,
    CARD: _cards,
    IBAN: _ibans,
    SSN: _ssns,
    PHONE: _phones,
    IP: _ips,
}


# --- reversible anonymization -------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<(" + "|".join(KINDS) + r")_([1-9]\d{0,5})>")
# The longest placeholder: `<API_KEY_999999>`. A stream holds back at most this much.
_PLACEHOLDER_MAX = 1 + max(map(len, KINDS)) + 1 + 6 + 1


class Anonymizer:
    """One request's placeholders: the same value gets the same `<KIND_n>` each time it
    appears, in any message of the request, and `restore` puts the values back."""

    def __init__(self, kinds: Collection[str] = KINDS) -> None:
        self._kinds = kinds
        self._placeholders: dict[str, str] = {}  # value -> placeholder
        self._values: dict[str, str] = {}  # placeholder -> value
        self._counts: dict[str, int] = dict.fromkeys(KINDS, 0)

    def anonymize(self, text: str) -> str:
        # A placeholder the text already holds is never handed out: `restore` would turn
        # the user's own `<EMAIL_1>` into someone's address.
        taken = {m.group() for m in _PLACEHOLDER.finditer(text)}
        return _replace(text, lambda match: self._placeholder(match, taken), self._kinds)

    def has_placeholders(self) -> bool:
        """Whether a placeholder was handed out (else the answer needs no restoring)."""
        return bool(self._values)

    def _placeholder(self, match: Match, taken: set[str]) -> str:
        placeholder = self._placeholders.get(match.value)
        while placeholder is None or (placeholder in taken and placeholder not in self._values):
            self._counts[match.kind] += 1
            placeholder = f"<{match.kind}_{self._counts[match.kind]}>"
        if placeholder not in self._values:
            self._placeholders[match.value] = placeholder
            self._values[placeholder] = match.value
        return placeholder

    def restore(self, text: str) -> str:
        """`text` with each placeholder this anonymizer handed out replaced by its value
        (others, and text that only looks like one, are left as they are)."""
        return _PLACEHOLDER.sub(lambda m: self._values.get(m.group(), m.group()), text)

    def stream_restorer(self) -> StreamRestorer:
        return StreamRestorer(self)


class StreamRestorer:
    """`restore` for a stream of chunks: the output, joined, is `restore` of the input,
    joined, however the stream was cut. A chunk's tail that may be the start of a
    placeholder is held back (at most _PLACEHOLDER_MAX characters) until it is decided."""

    def __init__(self, anonymizer: Anonymizer) -> None:
        self._anonymizer = anonymizer
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        # A placeholder holds one `<`, its first character: only one starting at the last
        # `<` can still be completed by what comes next.
        last = text.rfind("<", max(0, len(text) - _PLACEHOLDER_MAX))
        if last >= 0 and _could_start_placeholder(text[last:]):
            self._held = text[last:]
            text = text[:last]
        else:
            self._held = ""
        return self._anonymizer.restore(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self._anonymizer.restore(text)


def _could_start_placeholder(tail: str) -> bool:
    """Whether `tail` (which starts with `<`) is a proper prefix of some placeholder."""
    body = tail[1:]
    for kind in KINDS:
        head = kind + "_"
        if head.startswith(body):
            return True
        if body.startswith(head):
            number = body[len(head) :]
            return not number or (len(number) <= 6 and number.isdigit() and number[0] != "0")
    return False
