"""Keep credentials out of the trace store: every text and JSON value passes through here.

Two layers, because neither is enough alone: header-like keys that carry a credential are
dropped wherever they nest (their values need not look like keys: a session cookie), and
every string left is masked by `redact_text` (a key pasted into a prompt, a `?api_key=` in
a URL, a `Bearer` token in an error message).

Speed matters: the telemetry worker scrubs every span and message of every request, on a
machine it shares with the proxy. So every path starts with `is_clean`, one cheap check
over a whole row or JSON text, and does the real work only where it finds something.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import orjson

from proxy.config.redact import _CREDENTIAL_WORDS, redact_text

# Compared against the whole key and its last dotted segment, so OpenTelemetry's
# `http.request.header.authorization` is caught as well as a bare `Authorization`.
SECRET_KEYS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie"}
)
# Every redact_text pattern needs one of these to match, so a string without any is left
# as it is after a cheap check instead of five substitutions. Searched in the casefolded
# text (3x faster than IGNORECASE); tests/test_trace_store.py checks the claim against
# redact_text itself.
_MIGHT_REDACT = re.compile(rf"{_CREDENTIAL_WORDS}|bearer|basic|://|(?:sk|pk|rk|ak)[-_]")
_KEY_PREFIX = re.compile(r"[spra]k[-_]")
# The same check as plain substring tests: re tries every alternative at every position,
# `in` scans with memchr, 3-10x faster on this text. Used while the credential words stay
# plain literals (a test makes sure they do), the regex otherwise.
_WORDS = (*_CREDENTIAL_WORDS.split("|"), "bearer", "basic", "://")
_PLAIN_WORDS = all(re.escape(word) == word for word in _WORDS)
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_-]{40}")

# Attribute keys repeat across every span, so each key's verdict is worked out once. Bounded:
# header-derived keys come from clients, and an unbounded cache would be theirs to grow.
_SECRET_KEY_CACHE: dict[str, bool] = {}
# Short strings that is_clean flags but redact_text leaves alone ("first_token",
# "max_tokens"): they recur in every trace and redact_text costs ~10 µs. Only strings that
# came back unchanged are kept, so no secret is ever held here. Bounded like the above.
_KNOWN_UNCHANGED: set[str] = set()
_CACHE_MAX = 4096
_UNCHANGED_MAX_LEN = 128
# Values that scrub_value returns as they are, checked by exact type to skip a call.
_SCALARS = frozenset({int, float, bool, type(None)})


def is_secret_key(key: str) -> bool:
    verdict = _SECRET_KEY_CACHE.get(key)
    if verdict is None:
        name = key.lower().replace("_", "-")
        verdict = name in SECRET_KEYS or name.rpartition(".")[2] in SECRET_KEYS
        if len(_SECRET_KEY_CACHE) < _CACHE_MAX:
            _SECRET_KEY_CACHE[key] = verdict
    return verdict


def is_clean(text: str) -> bool:
    """True when nothing in `text` could be masked or dropped, so it can be stored as is.

    False alarms are fine (the caller then does the full work); a miss would leak. When
    true, `scrub_text(text)` is `text`. It stays true-only-when-safe for strings joined by
    NUL (no pattern can match a NUL, so every match lies inside one string) and for JSON
    text as orjson writes it: escaping touches only quotes, backslashes and control
    characters, none of them in any pattern, so a string's match survives into the JSON;
    and every SECRET_KEYS name holds a credential word that the casefolded text shows
    (tests check both claims), so a secret key is caught too. Dict keys are not masked
    by scrub_value, so a false alarm from a key alone only costs the walk.
    """
    if len(text) >= 40 and _LONG_TOKEN.search(text):
        return False
    folded = text.casefold()
    if not _PLAIN_WORDS:
        return not _MIGHT_REDACT.search(folded)
    for word in _WORDS:
        if word in folded:
            return False
    return not (("k-" in folded or "k_" in folded) and _KEY_PREFIX.search(folded))


def scrub_text(text: str) -> str:
    if is_clean(text) or text in _KNOWN_UNCHANGED:
        return text
    # No length limit: the store keeps whole messages, redact_text would truncate at 500.
    scrubbed = redact_text(text, limit=sys.maxsize)
    if scrubbed == text and len(text) <= _UNCHANGED_MAX_LEN and len(_KNOWN_UNCHANGED) < _CACHE_MAX:
        _KNOWN_UNCHANGED.add(text)
    return scrubbed


def scrub_value(value: Any) -> Any:
    """A JSON-like value with secret keys dropped and every string masked, at any depth."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            key: item if type(item) in _SCALARS else scrub_value(item)
            for key, item in value.items()
            if not (isinstance(key, str) and is_secret_key(key))
        }
    if isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else scrub_value(item) for item in value]
    return value


def scrub_json(value: Any) -> str | None:
    """The scrubbed value as JSON text; None stays NULL. A str is taken as JSON already."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return orjson.dumps(scrub_text(value)).decode()
    # Most values hold nothing to scrub: serialize once and check the text. Then, since
    # a false alarm is most often a key ("llm.usage.prompt_tokens"), drop the secret keys
    # and check the strings left. Only then walk every string. Each step returns what
    # the full walk would: scrub_value changes nothing that passed a check.
    try:
        text = orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        text = None  # e.g. a too-large int under a secret key that the walk will drop
    if text is not None and is_clean(text):
        return text
    strings: list[str] = []
    stripped = _strip_secret_keys(value, strings)
    if not is_clean("\x00".join(strings)):
        stripped = scrub_value(stripped)
    return orjson.dumps(stripped, default=str).decode()


def _strip_secret_keys(value: Any, strings: list[str]) -> Any:
    """`value` without secret keys, as scrub_value would walk it, its strings (not keys)
    appended to `strings`."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_key(key):
                continue
            kind = type(item)
            if kind is str:
                strings.append(item)
            elif kind not in _SCALARS:
                item = _strip_secret_keys(item, strings)
            out[key] = item
        return out
    if isinstance(value, list | tuple):
        return [_strip_secret_keys(item, strings) for item in value]
    if isinstance(value, str):
        strings.append(value)
    return value
