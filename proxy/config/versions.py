"""Config format versions: the ones upstream accepts, and near-misses we can read."""

from __future__ import annotations

import re

# What a config without `version` is read as: the newest format.
CURRENT_VERSION = "v0.4.0"
UPSTREAM_VERSIONS = ("v0.1", "v0.1.0", "0.1-beta", "0.2.0", "v0.3.0", "v0.4.0")

_LOOSE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-beta)?$")
_CANONICAL = {(0, 1): "v0.1.0", (0, 2): "0.2.0", (0, 3): "v0.3.0", (0, 4): "v0.4.0"}


def canonical_version(value: object) -> str | None:
    """The upstream spelling an unambiguous version means, e.g. 'v0.2.0' -> '0.2.0'."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    if value in UPSTREAM_VERSIONS:
        return value
    match = _LOOSE.match(value.strip())
    if not match or (match.group(3) not in (None, "0")):
        return None
    return _CANONICAL.get((int(match.group(1)), int(match.group(2))))


def version_tuple(version: str) -> tuple[int, int]:
    match = _LOOSE.match(version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
