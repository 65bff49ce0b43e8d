"""Keep credentials out of the trace store: every text and JSON value passes through here.

Two layers, because neither is enough alone: header-like keys that carry a credential are
dropped wherever they nest (their values need not look like keys: a session cookie), and
every string left is masked by `redact_text` (a key pasted into a prompt, a `?api_key=` in
a URL, a `Bearer` token in an error message).
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
# as it is after a cheap check instead of five substitutions: most attribute values are
# such strings, and the exporter thread's time is GIL time taken from the event loop.
# Searched in the casefolded text (3x faster than IGNORECASE); tests/test_trace_store.py checks
# the claim against redact_text itself.
_MIGHT_REDACT = re.compile(rf"{_CREDENTIAL_WORDS}|bearer|basic|://|(?:sk|pk|rk|ak)[-_]")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_-]{40}")


def is_secret_key(key: str) -> bool:
    name = key.lower().replace("_", "-")
    return name in SECRET_KEYS or name.rpartition(".")[2] in SECRET_KEYS


def scrub_text(text: str) -> str:
    if not (
        _MIGHT_REDACT.search(text.casefold()) or (len(text) >= 40 and _LONG_TOKEN.search(text))
    ):
        return text
    # No length limit: the store keeps whole messages, redact_text would truncate at 500.
    return redact_text(text, limit=sys.maxsize)


def scrub_value(value: Any) -> Any:
    """A JSON-like value with secret keys dropped and every string masked, at any depth."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            key: scrub_value(item)
            for key, item in value.items()
            if not (isinstance(key, str) and is_secret_key(key))
        }
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
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
    return orjson.dumps(scrub_value(value), default=str).decode()
