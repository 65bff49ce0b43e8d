"""Client keys as the config holds them: an id and the SHA-256 of the key, never the key.

A key comes into the config either from the environment (`key: $TEAM_KEY`, hashed as it is
read) or already hashed (`key: sha256:<hex>`, what `plano keys hash` prints). A request's
key is hashed once and compared with every accepted hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from proxy.config.model import ClientKey

HASH_PREFIX = "sha256:"
_HASHED = re.compile(r"sha256:([0-9a-fA-F]{64})")
MIN_KEY_CHARS = 16  # a key from the environment; `plano keys new` makes 43
NEW_KEY_PREFIX = "plano-"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def hashed_form(key: str) -> str:
    """What a config may hold for `key`: sha256:<hex>."""
    return HASH_PREFIX + digest(key).hex()


def new_key() -> str:
    return NEW_KEY_PREFIX + secrets.token_urlsafe(32)


def configured_digest(value: str) -> bytes:
    """The digest a config value stands for: a sha256:<hex> form, or a key to hash."""
    match = _HASHED.fullmatch(value.strip())
    return bytes.fromhex(match.group(1)) if match else digest(value)


def is_hashed(value: str) -> bool:
    return _HASHED.fullmatch(value.strip()) is not None


class KeyTable:
    """The keys one listener accepts."""

    def __init__(self, keys: Iterable[ClientKey]):
        self._keys = tuple(keys)

    def match(self, presented: str) -> ClientKey | None:
        """The key `presented` is, if any. Every accepted hash is compared (no early end):
        the time taken says nothing about which key came close."""
        seen = digest(presented)
        found = None
        for key in self._keys:
            if hmac.compare_digest(seen, key.digest) and found is None:
                found = key
        return found
