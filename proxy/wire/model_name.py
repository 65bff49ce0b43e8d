"""The `model` of an answer relayed as the provider sent it, renamed in place.

Every answer names the model that answered the way Plano does (`provider/model_id`, as the
`x-plano-model` header): the provider's own spelling (`smollm2-135m`, a dated snapshot) is
neither what the client asked for nor a name it can send back. Translated answers are
rendered with that name; passed-through bytes are edited instead of re-serialized, which
would cost a parse and a dump per stream event.

What is replaced is the first `"model"` key that follows `{` or `,`: inside a JSON string
every quote is escaped, so such a match is always a key. Providers put the answer's model
before its content (OpenAI's chunks and responses; Anthropic's message and its stream's
message_start), and their content holds no other `model` key before it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import orjson

_MODEL = re.compile(r'(?P<key>[{,]\s*"model"\s*:\s*)"(?:[^"\\]|\\.)*"')
_MODEL_BYTES = re.compile(_MODEL.pattern.encode())


class ModelRenamer:
    """Renames the model in the JSON texts of one answer (a body, or each stream event)."""

    __slots__ = ("_bytes", "_text")

    def __init__(self, name: str):
        self._bytes = orjson.dumps(name)
        self._text = self._bytes.decode()

    def text(self, data: str) -> str:
        if '"model"' not in data:  # most stream events: one fast scan, no regex
            return data
        return _MODEL.sub(lambda m: m.group("key") + self._text, data, count=1)

    def body(self, data: bytes) -> bytes:
        if b'"model"' not in data:
            return data
        return _MODEL_BYTES.sub(lambda m: m.group("key") + self._bytes, data, count=1)


@lru_cache(maxsize=256)  # names from a wildcard provider are the clients': bounded
def renamer(name: str) -> ModelRenamer:
    return ModelRenamer(name)


class KeepName(ModelRenamer):
    """Leaves the model as the server named it: an agent's answer is its own (upstream
    relays it unchanged), not a model's Plano chose."""

    __slots__ = ()

    def __init__(self) -> None:
        pass

    def text(self, data: str) -> str:
        return data

    def body(self, data: bytes) -> bytes:
        return data


KEEP_NAME = KeepName()
