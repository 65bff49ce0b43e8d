"""The store every instance of a deployment shares (`shared_state`): one Redis client.

Everything that lives in Redis (rate-limit buckets, affinity pins) goes through
`SharedState.run`, so a dead or slow store is handled once, the same way everywhere:

- every operation is bounded by the configured timeout (socket timeouts and an
  `asyncio.timeout` over the whole operation): no request waits longer on a dead store;
- an error (a refused connection, a Redis error) or TRIP_AFTER_TIMEOUTS timeouts in a row
  open a circuit breaker: for BREAKER_S the store is not called at all, so a dead store
  costs requests no latency; then one operation probes it, and the first that succeeds
  closes the breaker. Recovery needs nobody;
- what the request gets then is the config's `on_unavailable`: fail_open returns the
  operation's fallback (serve without the store), fail_closed raises StoreUnavailable
  (a 503 in the client's API shape);
- every operation not served is counted (plano_shared_state_errors_total{store,op}), the
  store's state is a gauge (plano_shared_state_up{store}), and a warning line is logged at
  most every LOG_EVERY_S per operation, saying how many were not served meanwhile.

The URL may carry a password: it is never logged, and errors are masked before they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote, urlsplit

from proxy.config.model import Config, OnUnavailable, SharedStateSettings
from proxy.config.redact import redact_url
from proxy.state.errors import StoreUnavailable
from proxy.state.health import HealthReport, StoreHealth, StoreMetrics

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("plano.state")

T = TypeVar("T")
STORE = "redis"  # the `store` label of shared_state's metrics
BREAKER_S = 1.0  # after a failure, the store is skipped this long, then probed
LOG_EVERY_S = 10.0  # at most one warning line per operation this often
TRIP_AFTER_TIMEOUTS = 3  # timeouts in a row that mark the store down (errors: one)
# Connections per process. An operation holds one for a round trip (~0.1 ms on a LAN), so
# a few dozen serve thousands of requests a second; more would only cost Redis memory.
MAX_CONNECTIONS = 64


class SharedStateError(Exception):
    """The store's settings cannot be used (a URL redis-py cannot read): `plano up` stops."""


class SharedState(HealthReport):
    def __init__(
        self,
        settings: SharedStateSettings,
        *,
        metrics: StoreMetrics | None = None,
        store: str = STORE,
        clock: Callable[[], float] = time.monotonic,
        breaker_s: float = BREAKER_S,
        log_every_s: float = LOG_EVERY_S,
    ):
        self.settings = settings
        self.timeout_s = settings.timeout_s
        self.fail_closed = settings.on_unavailable is OnUnavailable.FAIL_CLOSED
        self.store = store  # the metrics' label
        self.where = redact_url(settings.url.reveal())  # what logs may show
        self._client: Redis | None = None
        self._timeouts = 0  # in a row, since the last success
        self._health = StoreHealth(
            store,
            where=self.where,
            metrics=metrics,
            clock=clock,
            log_every_s=log_every_s,
            breaker_s=breaker_s,
            log=log,
            prefix="shared state: redis",
            secrets=_passwords(settings.url.reveal()),
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Make the client (one connection pool for this process) and ping the store once.

        A store that does not answer does not stop `plano up`: requests get on_unavailable
        until it does. A URL redis-py cannot read raises SharedStateError.
        """
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        try:
            # A blocking pool: a burst beyond MAX_CONNECTIONS waits (within the timeout)
            # for a connection to come free, where the plain pool fails at once.
            pool = BlockingConnectionPool.from_url(
                self.settings.url.reveal(),
                max_connections=MAX_CONNECTIONS,
                timeout=self.timeout_s,
                socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s,
                # No retries inside the client: the breaker decides when to try again,
                # and a retry would double the time a request waits on a dead store.
                retry=Retry(NoBackoff(), 0),
                client_name="plano",
            )
            self._client = Redis(connection_pool=pool)
        except ValueError as exc:
            raise SharedStateError(
                f"shared_state url {self.where}: {self._health.masked(str(exc))}"
            ) from None
        await self.run("ping", lambda client: client.ping(), None, fail_closed=False)
        if self.up:
            log.info("shared state: connected to redis at %s", self.where)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                await client.aclose(close_connection_pool=True)
            except Exception as exc:  # closing a pool to a dead server must not fail shutdown
                log.debug("shared state: closing the pool: %s", exc)

    @property
    def client(self) -> Redis:
        if self._client is None:
            raise RuntimeError("SharedState.open() was not awaited")
        return self._client

    # -- operations ----------------------------------------------------------------------

    async def run(
        self,
        op: str,
        fn: Callable[[Redis], Awaitable[T]],
        fallback: T,
        *,
        fail_closed: bool | None = None,
    ) -> T:
        """`fn(client)`, bounded by the timeout; when the store cannot serve it, `fallback`
        (fail_open) or StoreUnavailable (fail_closed). `fail_closed` overrides the config's
        choice for one operation (the start-up ping never fails anything)."""
        closed = self.fail_closed if fail_closed is None else fail_closed
        if self._health.skipping():
            self._not_served(op, None, closed)
            return fallback
        with self._health.attempt() as probe:
            try:
                async with asyncio.timeout(self.timeout_s):
                    result = await fn(self.client)
            except Exception as exc:  # any failure of the store is the same to a request
                if not _store_failure(exc):
                    raise
                self._failed(exc, probe)
                self._not_served(op, exc, closed)
                return fallback
        self._timeouts = 0
        self._health.healthy()
        return result

    def _failed(self, exc: Exception, probe: bool) -> None:
        """A store that refuses connections or errs is down at once. A timeout alone may be
        this process's own loop or CPU stalling (the reply waiting in the socket), so the
        breaker opens only after TRIP_AFTER_TIMEOUTS in a row: a lone slow operation must
        not leave a second of requests without their limits."""
        if _is_timeout(exc) and not probe and self.up is not None:  # it answered before
            self._timeouts += 1
            if self._timeouts < TRIP_AFTER_TIMEOUTS:
                return
        self._timeouts = 0
        self._health.trip()

    def _not_served(self, op: str, exc: BaseException | None, closed: bool) -> None:
        self._health.not_served(
            op,
            exc,
            "answering 503 (fail_closed)" if closed else "serving without it (fail_open)",
        )
        if closed:
            raise StoreUnavailable(self.store, op)


def _passwords(url: str) -> tuple[str, ...]:
    """The URL's password as written and unquoted: redis-py may quote either."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    return (password, unquote(password)) if password else ()


def _is_timeout(exc: BaseException) -> bool:
    from redis.exceptions import TimeoutError as RedisTimeout

    return isinstance(exc, TimeoutError | RedisTimeout)


def _store_failure(exc: BaseException) -> bool:
    """Errors that mean the store did not serve: timeouts, connections, Redis errors."""
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError | TimeoutError)


class SharedStores:
    """The shared stores one process opens at start-up: `shared_state`, and the affinity
    cache's Redis (the same client when it has the same URL, else one of its own)."""

    def __init__(self, state: SharedState | None, affinity: SharedState | None):
        self.state, self.affinity = state, affinity

    @classmethod
    async def open(cls, config: Config, metrics: StoreMetrics | None = None) -> SharedStores:
        state = affinity = None
        stores = cls(None, None)
        try:
            if config.shared_state is not None:
                state = stores.state = SharedState(config.shared_state, metrics=metrics)
                await state.open()
            cache = config.routing.session_cache
            if cache.type == "redis" and cache.url is not None:
                if state is not None and cache.url == config.shared_state.url:
                    affinity = state
                else:
                    # Upstream's own session cache: it fails open, whatever shared_state says.
                    timeout = config.shared_state.timeout_s if config.shared_state else 0.1
                    affinity = SharedState(
                        SharedStateSettings(url=cache.url, timeout_s=timeout),
                        metrics=metrics,
                        store="redis_affinity",
                    )
                    await affinity.open()
                stores.affinity = affinity
        except BaseException:
            await stores.close()
            raise
        return stores

    async def close(self) -> None:
        for store in {id(s): s for s in (self.state, self.affinity) if s is not None}.values():
            await store.close()
