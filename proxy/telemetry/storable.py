"""Values the trace store can hold, made from values it cannot.

A record carries text from clients and upstreams. Some of it cannot be written as it is:
aiohttp decodes a header's bytes as UTF-8 with `surrogateescape`, so a byte that is not
UTF-8 (`X-Model-Affinity: \\xff`) arrives as a lone surrogate (`\\udcff`), which neither
SQLite, orjson nor an OTLP exporter can encode; an int can be too large for SQLite; JSON
can nest deeper than orjson writes. Such a value is replaced by the nearest thing that can
be stored, and the caller counts the replacement: the record is kept, the rest of its batch
too, and nothing is lost silently.

Everything here is cheap on the values that need nothing (a C-level check), because it
also runs on the gateway's request path (`proxy.telemetry.hub`).
"""

from __future__ import annotations

import re
from typing import Any

# Deeper JSON than this is cut (orjson refuses to write 255 levels; no trace needs 64).
MAX_JSON_DEPTH = 64
TOO_DEEP = "[nested too deep to store]"
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # what SQLite and orjson hold as integers
_JSON_SCALARS = (bool, float, type(None))


def is_utf8(text: str) -> bool:
    """Whether UTF-8 can encode `text` (it cannot hold a lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def fits_int64(value: int) -> bool:
    # Compared, not `in range(...)`: that is a linear scan for an int subclass (an IntEnum).
    return _INT64_MIN <= value <= _INT64_MAX


def escape_surrogates(text: str) -> str:
    """`text` with each lone surrogate written out: a byte that `surrogateescape` decoded
    (U+DC80..U+DCFF) as `\\xNN`, the byte it was; any other as `\\uNNNN`."""
    if is_utf8(text):
        return text
    return _SURROGATE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def storable_json(value: Any) -> tuple[Any, bool]:
    """A JSON-able copy of `value` that orjson can always write, and whether anything had
    to be replaced: text escaped (see escape_surrogates), ints past 64 bits and keys that
    are not text as strings, other objects as their `str`, nesting past MAX_JSON_DEPTH as
    a marker."""
    replaced = [False]
    return _storable(value, 0, replaced), replaced[0]


def _storable(value: Any, depth: int, replaced: list[bool]) -> Any:
    if isinstance(value, str):
        text = escape_surrogates(value)
        if text is not value:
            replaced[0] = True
        return text
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, int):
        if fits_int64(value):
            return value
        replaced[0] = True
        return str(value)
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_JSON_DEPTH:
            replaced[0] = True
            return TOO_DEEP
        if isinstance(value, dict):
            return {
                _storable(k if isinstance(k, str) else str(k), depth + 1, replaced): _storable(
                    v, depth + 1, replaced
                )
                for k, v in value.items()
            }
        return [_storable(item, depth + 1, replaced) for item in value]
    # What orjson's `default=str` would write, but escaped like any text.
    try:
        text = str(value)
    except Exception:  # an object whose __str__ fails: its type must do
        replaced[0] = True
        text = f"<{type(value).__name__}>"
    return _storable(text, depth, replaced)
