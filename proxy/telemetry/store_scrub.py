"""Keep credentials out of the trace store: every text and JSON value passes through here.

Two layers, because neither is enough alone: header-like keys that carry a credential are
dropped wherever they nest (their values need not look like keys: a session cookie), and
every string left is masked by `redact_text` (a key pasted into a prompt, a `?api_key=` in
a URL, a `Bearer` token in an error message).

Speed matters: the telemetry worker scrubs every span and message of every request, on a
machine it shares with the proxy. So the store hands over whole columns of a batch
(`scrub_texts`, `scrub_json_column`): they are serialized in C loops and checked at once
by `is_clean`, and only what fails that cheap check gets the real work.

Whatever a value holds, scrubbing it is linear in its size (redact_text is), and a JSON
value that cannot be written as it is (text that is not valid UTF-8, an int past 64 bits,
nesting too deep) comes out replaced (`proxy.telemetry.storable`), never as an error: one
odd value must not cost its batch. The caller is told, to count it.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import repeat
from typing import Any

import orjson

from proxy.config.redact import _CREDENTIAL_WORDS, redact_text
from proxy.telemetry.storable import storable_json

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
# The same for ASCII bytes, which orjson's output mostly is.
_MIGHT_REDACT_BYTES = re.compile(_MIGHT_REDACT.pattern.encode())
_KEY_PREFIX_BYTES = re.compile(_KEY_PREFIX.pattern.encode())
_WORDS_BYTES = tuple(word.encode() for word in _WORDS)
# _LONG_TOKEN's test without re, which steps through a run at every start in it (~20x
# slower): token bytes become "a", all else a space (UTF-8 bytes of non-ASCII are >= 0x80,
# never token bytes), then one substring search finds a run of 40.
_TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_TOKEN_TABLE = bytes(0x61 if byte in _TOKEN_CHARS else 0x20 for byte in range(256))
_TOKEN_RUN = b"a" * 40

# Attribute keys repeat across every span, so each key's verdict is worked out once. Bounded
# (see _remember): header-derived keys come from clients, who must not grow it at will.
_SECRET_KEY_CACHE: dict[str, bool] = {}
# Short strings that is_clean flags but redact_text leaves alone ("first_token",
# "max_tokens"): they recur in every trace and redact_text costs ~10 µs. Only strings that
# came back unchanged are kept, so no secret is ever held here. Bounded like the above.
# Callers may skip checking a string found here.
KNOWN_UNCHANGED: set[str] = set()
# Which of a dict's keys (these, in this order) scrub_value drops (see scrub_json_column).
# One shared empty set, so "drops none" is found by identity in a C loop.
_NONE_DROPPED: frozenset[str] = frozenset()
_KEY_SET_CACHE: dict[tuple[Any, ...], frozenset[str] | None] = {}
_UNKNOWN = object()
_CACHE_MAX = 4096
_UNCHANGED_MAX_LEN = 128
# Values that scrub_value returns as they are, checked by exact type to skip a call.
_SCALARS = frozenset({int, float, bool, type(None)})


def is_secret_key(key: str) -> bool:
    verdict = _SECRET_KEY_CACHE.get(key)
    if verdict is None:
        name = key.lower().replace("_", "-")
        verdict = name in SECRET_KEYS or name.rpartition(".")[2] in SECRET_KEYS
        _remember(_SECRET_KEY_CACHE, key, verdict)
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
    if _has_long_token(text):
        return False
    # casefold has no ASCII fast path; on ASCII text lower() is the same and ~5x cheaper.
    folded = text.lower() if text.isascii() else text.casefold()
    if not _PLAIN_WORDS:
        return not _MIGHT_REDACT.search(folded)
    for word in _WORDS:
        if word in folded:
            return False
    return not (("k-" in folded or "k_" in folded) and _KEY_PREFIX.search(folded))


def _is_clean_utf8(data: bytes) -> bool:
    """is_clean of UTF-8 text (orjson's output), not decoded when it is ASCII (tests check
    the two agree)."""
    if not data.isascii():
        return is_clean(data.decode())
    if len(data) >= 40 and _TOKEN_RUN in data.translate(_TOKEN_TABLE):
        return False
    folded = data.lower()
    if not _PLAIN_WORDS:
        return not _MIGHT_REDACT_BYTES.search(folded)
    for word in _WORDS_BYTES:
        if word in folded:
            return False
    return not ((b"k-" in folded or b"k_" in folded) and _KEY_PREFIX_BYTES.search(folded))


def _has_long_token(text: str) -> bool:
    """`_LONG_TOKEN.search(text)`, faster (tests check they agree)."""
    if len(text) < 40:
        return False
    return _TOKEN_RUN in text.encode("utf-8", "surrogatepass").translate(_TOKEN_TABLE)


def scrub_text(text: str) -> str:
    if (len(text) <= _UNCHANGED_MAX_LEN and text in KNOWN_UNCHANGED) or is_clean(text):
        return text
    # No length limit: the store keeps whole messages, redact_text would truncate at 500.
    scrubbed = redact_text(text, limit=sys.maxsize)
    if scrubbed == text and len(text) <= _UNCHANGED_MAX_LEN:
        _remember(KNOWN_UNCHANGED, text)
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
    return scrub_json_column([value])[0]


def scrub_json_fully(value: Any, on_replace: Callable[[], object] | None = None) -> str | None:
    """scrub_json without the shortcut: every key and string looked at. A value that
    cannot be written as it is is replaced, and `on_replace` called."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        with contextlib.suppress(orjson.JSONDecodeError):  # else plain text: a JSON string
            value = orjson.loads(value)
    return _dumps_scrubbed(value, on_replace)


def _dumps_scrubbed(value: Any, on_replace: Callable[[], object] | None) -> str:
    try:
        return orjson.dumps(scrub_value(value), default=str).decode()
    except (TypeError, RecursionError):  # orjson's JSONEncodeError is a TypeError
        storable, replaced = storable_json(value)
        if replaced and on_replace is not None:
            on_replace()
        return orjson.dumps(scrub_value(storable)).decode()


def scrub_texts(texts: Iterable[str]) -> dict[str, str]:
    """The texts that scrub_text changes, each mapped to its scrubbed form (most often
    none: then this costs one check over all of them)."""
    unknown = [text for text in texts if text not in KNOWN_UNCHANGED]
    changed: dict[str, str] = {}
    for i in unclean(unknown):
        scrubbed = scrub_text(unknown[i])
        if scrubbed != unknown[i]:
            changed[unknown[i]] = scrubbed
    return changed


def scrub_json_column(
    values: Sequence[Any], on_replace: Callable[[], object] | None = None
) -> list[str | None]:
    """scrub_json of each value, at a fraction of the cost of calling it on each;
    `on_replace` is called for each value that had to be replaced to be written.

    Each value is serialized once by orjson (its loop, not Python's) and all are checked
    at once; only those that fail the check are walked. A dict's own keys are not checked
    as text: scrub_value keeps them as they are or drops them whole, which is known per
    key set (attribute dicts repeat theirs), so the dropped ones go first and only the
    values are checked. Otherwise "llm.usage.prompt_tokens" would raise a false alarm on
    every LLM span. Keys nested deeper are in the values' JSON, so they are checked.
    """
    out: list[str | None] = [None] * len(values)
    present = [i for i, value in enumerate(values) if value is not None]
    if not present:
        return out
    items = [values[i] for i in present]
    kinds = set(map(type, items))
    dirty: list[int] | None = None
    try:
        if kinds == _DICT:
            kept = _without_dropped_keys(items)
            if kept is not None:
                texts = list(map(bytes.decode, map(_dumps, kept)))
                # All the values in one JSON text: ",[" between two dicts' values can
                # start no match, so one check stands for all of them.
                dirty = []
                if not _is_clean_utf8(_dumps(list(map(tuple, map(dict.values, kept))))):
                    dirty = unclean(
                        list(map(bytes.decode, map(_dumps, map(tuple, map(dict.values, kept)))))
                    )
        elif kinds <= _SEQUENCES:
            texts = list(map(bytes.decode, map(_dumps, items)))
            dirty = unclean(texts)
    except orjson.JSONEncodeError:
        # A too-large int (perhaps under a key scrubbing would drop), a lone surrogate,
        # nesting orjson refuses...
        dirty = None
    if dirty is None:  # JSON given as text, a scalar, something odd: one at a time
        for i in present:
            out[i] = _scrub_json_one(values[i], on_replace)
        return out
    for j in dirty:
        texts[j] = scrub_json_fully(values[present[j]], on_replace)
    for i, text in zip(present, texts, strict=True):
        out[i] = text
    return out


def unclean(texts: Sequence[str]) -> list[int]:
    """The indexes of the texts that is_clean rejects. A check costs about as much for one
    short text as for many, so they are checked together and halved only where it fails."""
    if not texts or is_clean("\x00".join(texts)):
        return []
    if len(texts) <= _SPLIT_BELOW:
        return [i for i, text in enumerate(texts) if not is_clean(text)]
    half = len(texts) // 2
    return unclean(texts[:half]) + [half + i for i in unclean(texts[half:])]


def _scrub_json_one(value: Any, on_replace: Callable[[], object] | None) -> str | None:
    """scrub_json for a value the column path does not take (a str of JSON, a scalar)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return _dumps_scrubbed(value, on_replace)  # plain text: stored as a JSON string
    try:
        text = orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        return scrub_json_fully(value, on_replace)
    return text if is_clean(text) else scrub_json_fully(value, on_replace)


def _without_dropped_keys(items: list[dict[Any, Any]]) -> list[dict[Any, Any]] | None:
    """The dicts without the keys scrub_value would drop; None if one has a non-str key."""
    key_sets = list(map(tuple, items))
    dropped = list(map(_KEY_SET_CACHE.get, key_sets, repeat(_UNKNOWN)))
    if dropped.count(_NONE_DROPPED) == len(dropped):
        return items  # the usual case, found in C loops
    out = list(items)
    for j, keys in enumerate(key_sets):
        drop = dropped[j]
        if drop is _UNKNOWN:
            drop = _dropped_keys(keys)
        if drop is None:
            return None
        if drop:
            out[j] = kept = items[j].copy()  # a C copy, then a few deletions: ~4x cheaper
            for key in drop:
                del kept[key]
    return out


def _dropped_keys(keys: tuple[Any, ...]) -> frozenset[str] | None:
    """Which of a dict's keys scrub_value drops; None if one is not a str (no shortcut)."""
    seen: Any = _KEY_SET_CACHE.get(keys, _UNKNOWN)  # a key set seen earlier in this column
    if seen is not _UNKNOWN:
        return seen
    dropped: frozenset[str] | None = None
    if all(isinstance(key, str) for key in keys):
        dropped = frozenset(key for key in keys if is_secret_key(key))
        if not dropped:
            dropped = _NONE_DROPPED
    _remember(_KEY_SET_CACHE, keys, dropped)
    return dropped


def _remember(cache: dict[Any, Any] | set[Any], key: Any, value: Any = None) -> None:
    """Add to a cache, emptied when full: bounded, and it follows a changing workload."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    if isinstance(cache, dict):
        cache[key] = value
    else:
        cache.add(key)


_dumps = partial(orjson.dumps, default=str)
_DICT = frozenset({dict})
_SEQUENCES = frozenset({list, tuple})
_SPLIT_BELOW = 4
