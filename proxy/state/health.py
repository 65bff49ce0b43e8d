"""The health of one external store (shared_state's Redis, the Responses API's PostgreSQL).

Both stores answer a dead or slow server the same way, so the account lives here once:
whether the store is up, a circuit breaker that skips it for a while after a failure and
lets one operation probe it, the operations not served (per operation, and as metrics),
and a warning per operation at most every log interval, with the store's password masked.

What counts as a failure, and what a request gets then, stays with each store: it says
why in the `consequence` it passes when an operation was not served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from proxy.config.redact import redact_line


class StoreMetrics(Protocol):
    """Where a store's health goes: the telemetry sink, which feeds /metrics."""

    def store_error(self, store: str, op: str) -> None: ...

    def store_up(self, store: str, up: bool) -> None: ...


class StoreHealth:
    def __init__(
        self,
        store: str,
        *,
        where: str,
        metrics: StoreMetrics | None,
        clock: Callable[[], float],
        log_every_s: float,
        breaker_s: float,
        log: logging.Logger,
        prefix: str,
        secrets: Iterable[str] = (),
    ):
        self.store = store  # the metrics' label
        self.where = where  # what logs may show
        self.metrics = metrics
        self.breaker_s = breaker_s
        self._clock = clock
        self._log_every_s = log_every_s
        self._log = log
        self._prefix = prefix  # "<what> state: <kind>", each log line's start
        self._secrets = tuple(filter(None, secrets))
        self.up: bool | None = None  # None until the first operation says
        self.errors: dict[str, int] = {}  # op -> operations not served, since start
        self.skip_until = 0.0  # the breaker is open until then (0: closed)
        self._down_since: float | None = None
        self._probing = False
        self._last_log: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    # -- the breaker ---------------------------------------------------------------------

    def skipping(self) -> bool:
        """The store is not to be called: the breaker's window, or another one probes."""
        return self._clock() < self.skip_until or bool(self._probing and self.skip_until)

    @contextmanager
    def attempt(self) -> Iterator[bool]:
        """Around one call of the store; says whether it is the probe of an open breaker
        (only one at a time: the others are skipped meanwhile)."""
        probe = self.skip_until > 0
        if probe:
            self._probing = True
        try:
            yield probe
        finally:
            if probe:
                self._probing = False

    def trip(self) -> None:
        self.skip_until = self._clock() + self.breaker_s
        if self._down_since is None:
            self._down_since = self._clock()
        self._set_up(False)

    def healthy(self) -> None:
        if self._down_since is not None:
            missed = sum(self._unlogged.values())
            self._log.warning(
                "%s at %s is back after %.1fs (%d operations not served since the last warning)",
                self._prefix,
                self.where,
                self._clock() - self._down_since,
                missed,
            )
            self._unlogged.clear()
            self._last_log.clear()
        self._down_since = None
        self.skip_until = 0.0
        self._set_up(True)

    def _set_up(self, up: bool) -> None:
        if self.up is not up:
            self.up = up
            if self.metrics is not None:
                self.metrics.store_up(self.store, up)

    # -- what was not served -------------------------------------------------------------

    def not_served(self, op: str, exc: BaseException | None, consequence: str) -> None:
        """Count it, and warn (`consequence`: what the request gets instead)."""
        self.errors[op] = self.errors.get(op, 0) + 1
        if self.metrics is not None:
            self.metrics.store_error(self.store, op)
        now = self._clock()
        last = self._last_log.get(op)
        if last is not None and now - last < self._log_every_s:
            self._unlogged[op] = self._unlogged.get(op, 0) + 1
            return
        self._last_log[op] = now
        missed = self._unlogged.pop(op, 0)
        why = self.masked(f"{type(exc).__name__}: {exc}") if exc else "skipped: marked down"
        self._log.warning(
            "%s at %s did not serve %s (%s); %s, retrying every %gs%s",
            self._prefix,
            self.where,
            op,
            why.strip(),  # a bare TimeoutError has no text after its name
            consequence,
            self.breaker_s,
            f"; {missed} more not served since the last warning" if missed else "",
        )

    def masked(self, text: str) -> str:
        """An error's text without the store's password (drivers may quote it)."""
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return redact_line(text)


class HealthReport:
    """What a store with a StoreHealth shows of it (read by `plano up` and tests)."""

    _health: StoreHealth

    @property
    def up(self) -> bool | None:
        """None until the first operation says."""
        return self._health.up

    @property
    def errors(self) -> dict[str, int]:
        """op -> operations not served, since start."""
        return self._health.errors
