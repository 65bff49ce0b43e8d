"""Reading and checking fields of client JSON bodies, shared by the wire modules."""

from __future__ import annotations

import reprlib
import uuid
from typing import Any

from proxy.canonical import WireError

_KIND_NAMES = {str: "a string", bool: "a boolean", dict: "an object", list: "an array"}
# A client's value quoted in an error: bounded work and length, whatever its size.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxdict, _SHOWN.maxlist = 2, 3, 3
_SHOWN.maxstring = _SHOWN.maxother = 40


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def shown(value: object) -> str:
    """A value a client sent, for an error message: its repr, cut short."""
    return _SHOWN.repr(value)


def one_of(value: object, allowed) -> bool:
    """Whether a client's value is one of a set of strings (a list is not hashable)."""
    return isinstance(value, str) and value in allowed


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number_field(body: dict, key: str) -> float | None:
    """An optional number; a bool or a string is a client error, not a number."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"'{key}' must be a number", key)
    return float(value)


def optional_field(body: dict, key: str, kind: type, where: str | None = None) -> Any:
    """An optional field of one type, named by its path in the error."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        name = f"{where}.{key}" if where else f"'{key}'"
        param = f"{where}.{key}" if where else key
        raise WireError(f"{name} must be {_KIND_NAMES.get(kind, kind.__name__)}", param)
    return value
