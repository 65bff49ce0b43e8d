"""Where X-Model-Affinity pins live: this process's memory, or Redis for every instance.

A pin is the route a session got first. In Redis it is upstream's key,
`plano:affinity:{tenant:}{session}`, holding a small JSON object and expiring after
`session_ttl_seconds` (SET EX: every pin made restarts its TTL). Redis errors go through
SharedState: with fail_open (upstream's behaviour, and the default) a request whose pin
cannot be read is routed afresh and one whose pin cannot be kept is served anyway.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from proxy.routing.affinity import AffinityStore
from proxy.state.shared import SharedState

KEY_PREFIX = "plano:affinity:"
# Pins bigger than this are not Plano's: a key another program wrote is ignored.
MAX_PIN_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Pin:
    route: str
    routes: str  # digest of the route set it was decided in: another set decides afresh
    backend: str
    named: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)


class PinStore(Protocol):
    async def get(self, key: str) -> Pin | None: ...

    async def put(self, key: str, pin: Pin) -> None: ...


def pin_key(session: str, tenant: str | None = None) -> str:
    """Upstream's key for a session: the tenant, when the config names its header, first."""
    return f"{tenant}:{session}" if tenant else session


def routes_digest(route_key: object) -> str:
    """A route set's identity that every process computes alike (hash() is salted)."""
    return hashlib.sha256(repr(route_key).encode()).hexdigest()[:16]


class MemoryPins:
    """One process's pins: an LRU bounded by session_max_entries."""

    def __init__(
        self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store: AffinityStore[Pin] = AffinityStore(ttl_s, max_entries, clock)

    async def get(self, key: str) -> Pin | None:
        return self.store.get(key)

    async def put(self, key: str, pin: Pin) -> None:
        self.store.pin(key, pin)


class RedisPins:
    """Pins every instance sees, in the shared store."""

    def __init__(self, shared: SharedState, ttl_s: float) -> None:
        self.shared = shared
        self.ttl_s = max(int(ttl_s), 1)

    async def get(self, key: str) -> Pin | None:
        raw = await self.shared.run(
            "affinity_get", lambda client: client.get(KEY_PREFIX + key), None
        )
        return _decode(raw) if raw is not None else None

    async def put(self, key: str, pin: Pin) -> None:
        value = orjson.dumps(
            {
                # upstream's field names first, for anyone reading the key by hand
                "route_name": pin.route,
                "routes": pin.routes,
                "backend": pin.backend,
                "named": list(pin.named),
                "scores": dict(pin.scores),
            }
        )
        await self.shared.run(
            "affinity_put",
            lambda client: client.set(KEY_PREFIX + key, value, ex=self.ttl_s),
            None,
        )


def _decode(raw: bytes) -> Pin | None:
    """A stored pin, or None for a value Plano did not write (read as no pin)."""
    if len(raw) > MAX_PIN_BYTES:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    route, routes, backend = data.get("route_name"), data.get("routes"), data.get("backend")
    named, scores = data.get("named") or [], data.get("scores") or {}
    if not (isinstance(route, str) and isinstance(routes, str) and isinstance(backend, str)):
        return None
    if not isinstance(named, list) or not isinstance(scores, dict):
        return None
    return Pin(
        route,
        routes,
        backend,
        tuple(n for n in named if isinstance(n, str)),
        {k: float(v) for k, v in scores.items() if isinstance(v, int | float)},
    )
