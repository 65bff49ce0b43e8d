"""Responses API state in PostgreSQL (`state_storage: {type: postgres}`): one database that
every instance of a deployment reads, so a conversation may continue on any of them.

The rows are the SQLite store's (one per response: the turn it added and a pointer to the
previous response), read back by one recursive query. psycopg 3's async connections in a
pool opened at start-up; nothing blocks the event loop.

A dead or slow database is handled in one place, `_run`:
- every operation is bounded by `timeout` as the request sees it (the request stops
  waiting then, whatever the driver is still doing), and server-side by a statement
  timeout just under it;
- a failure opens a circuit breaker: for BREAKER_S the database is not called, so a dead
  one costs requests no latency; then one operation probes it, and the first that
  succeeds closes the breaker. Recovery needs nobody (the pool reconnects by itself);
- a load that fails is a 503 naming the store (the conversation cannot be read: answering
  without it would be a different conversation); a save that fails is logged and counted,
  and the answer stands. With `on_unavailable: fail_closed`, requests that would be stored
  get the 503 before any model is called while the database is marked down.

The connection string's password is never logged: the store is named by host, port and
database, and errors are masked before they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from proxy.canonical import Message
from proxy.state.conversations import MAX_CHAIN, StateStoreError, decode_turns, encode_turn
from proxy.state.errors import StoreUnavailable
from proxy.state.health import HealthReport, StoreHealth, StoreMetrics

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

    from proxy.config.model import StateStorage

log = logging.getLogger("plano.state")

T = TypeVar("T")
STORE = "postgres"  # the store's name in 503s and metrics
BREAKER_S = 1.0  # after a failure, the database is skipped this long, then probed
LOG_EVERY_S = 10.0  # at most one warning line per operation this often
# Connections per process. A save or load holds one for a round trip or two, so a few
# serve hundreds of Responses requests a second; PostgreSQL's own default allows 100 in all.
MAX_CONNECTIONS = 8
# A conversation read back is cut at its oldest end past this many bytes (as it is past
# MAX_CHAIN turns): a row is at most a request body and an answer, but a long chain of
# them must not be read into memory whole.
MAX_LOADED_BYTES = 64 * 1024 * 1024
# One lock id for the schema's creation, so instances starting at once take turns
# (CREATE TABLE IF NOT EXISTS alone can fail on a concurrent twin).
SCHEMA_LOCK_ID = 0x706C616E6F5F7273  # "plano_rs"

SCHEMA = """
CREATE TABLE IF NOT EXISTS plano_responses (
    id TEXT PRIMARY KEY,
    previous_id TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    model TEXT,
    messages BYTEA NOT NULL
)
"""
# BYTEA, not JSONB: JSONB refuses the \u0000 a message may hold, and nothing queries inside.
SAVE = """
INSERT INTO plano_responses (id, previous_id, model, messages) VALUES (%s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET previous_id = EXCLUDED.previous_id, model = EXCLUDED.model,
    messages = EXCLUDED.messages
"""
LOAD = """
WITH RECURSIVE chain(id, previous_id, messages, depth) AS (
    SELECT id, previous_id, messages, 0 FROM plano_responses WHERE id = %s
    UNION ALL
    SELECT r.id, r.previous_id, r.messages, c.depth + 1
    FROM plano_responses r JOIN chain c ON r.id = c.previous_id
    WHERE c.depth < %s
)
SELECT messages FROM (
    SELECT messages, depth, sum(octet_length(messages)) OVER (ORDER BY depth) AS upto
    FROM chain
) newest_first
WHERE depth = 0 OR upto <= %s
ORDER BY depth DESC
"""


class _NotServed(Exception):
    """The database did not serve an operation (failed, timed out, or skipped)."""


class PostgresConversationStore(HealthReport):
    def __init__(
        self,
        settings: StateStorage,
        *,
        metrics: StoreMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        breaker_s: float = BREAKER_S,
        log_every_s: float = LOG_EVERY_S,
    ):
        if settings.connection_string is None:
            raise StateStoreError("state_storage type postgres needs a connection_string")
        self._conninfo = settings.connection_string.reveal()
        self.timeout_s = settings.timeout_s
        self.fail_closed = settings.on_unavailable == "fail_closed"
        self._pool: AsyncConnectionPool | None = None
        self._schema_ready = False
        self.where, secrets = _describe(self._conninfo)
        self._health = StoreHealth(
            STORE,
            where=self.where,
            metrics=metrics,
            clock=clock,
            log_every_s=log_every_s,
            breaker_s=breaker_s,
            log=log,
            prefix="responses state: postgres",
            secrets=secrets,  # libpq does not quote the password; in case
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> PostgresConversationStore:
        """Open the pool and create the table if it is missing.

        A database that does not answer does not stop `plano up`: loads get 503s and saves
        are skipped until it does, and the table is created at the first operation that
        reaches it. A connection string psycopg cannot read raises StateStoreError.
        """
        from psycopg_pool import AsyncConnectionPool

        # The pool logs every failed reconnection; StoreHealth says it once per LOG_EVERY_S.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self._pool = AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=MAX_CONNECTIONS,
            open=False,
            timeout=self.timeout_s,
            kwargs=_connection_options(self.timeout_s),
            name="plano-state",
        )
        await self._pool.open(wait=False)
        try:
            # A probe: every operation's connection ensures the schema first (once).
            await self._run("open", _probe)
        except _NotServed:
            pass  # logged by _not_served; tried again by the next operation
        else:
            log.info("responses state: connected to postgres at %s", self.where)
        return self

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                # A worker may be inside a connection attempt: it ends at the connect
                # timeout, and a task left pending would be destroyed with the loop.
                await pool.close(timeout=_connect_timeout(self.timeout_s) + 1.0)
            except Exception as exc:  # closing a pool to a dead server must not fail shutdown
                log.debug("responses state: closing the pool: %s", self._health.masked(str(exc)))

    # -- the store -----------------------------------------------------------------------

    async def ready(self) -> None:
        """Before a request that will be stored: with fail_closed, a 503 while the
        database is marked down (one probe when the breaker's window has passed)."""
        if not self.fail_closed or self._health.skip_until == 0.0:
            return
        try:
            await self._run("probe", _probe)
        except _NotServed:
            raise StoreUnavailable(STORE, "save") from None

    async def load(self, response_id: str) -> list[Message] | None:
        try:
            rows = await self._run("load", _load(response_id))
        except _NotServed:
            raise StoreUnavailable(STORE, "load") from None
        return decode_turns(rows)

    async def save(
        self, response_id: str, previous_id: str | None, model: str, messages: list[Message]
    ) -> None:
        blob = encode_turn(messages)
        # Not served: the answer stands (it is served, and billed); _not_served logged it
        # and counted it.
        with contextlib.suppress(_NotServed):
            await self._run("save", _save(response_id, previous_id, model, blob))

    # -- guarded operations --------------------------------------------------------------

    async def _run(self, op: str, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        if self._health.skipping():
            self._not_served(op, None)
        with self._health.attempt():
            task = asyncio.ensure_future(self._with_connection(fn))
            try:
                # The request waits `timeout` at most; a query still running is cancelled
                # in the background (psycopg then asks the server to cancel it, which
                # takes time).
                async with asyncio.timeout(self.timeout_s):
                    result = await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                raise
            except Exception as exc:  # any failure of the database is the same to a request
                task.cancel()
                if not _store_failure(exc):
                    raise
                self._health.trip()
                self._not_served(op, exc)
        self._health.healthy()
        return result

    async def _with_connection(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        import psycopg

        if self._pool is None:
            raise RuntimeError("PostgresConversationStore.open() was not awaited")
        # A pooled connection the server dropped (it restarted) fails at its first use and
        # leaves the pool; one more try takes a live one. Every operation may run twice:
        # a load reads, a save is an upsert.
        for attempt in (1, 2):
            conn = None
            try:
                async with self._pool.connection() as conn:
                    if not self._schema_ready:
                        await self._ensure_schema(conn)
                    return await fn(conn)
            except psycopg.OperationalError:
                if attempt == 2 or conn is None or not conn.broken:
                    raise
        raise AssertionError("unreachable")

    async def _ensure_schema(self, conn: AsyncConnection) -> None:
        async with conn.transaction():
            # Instances starting at once take turns; the lock ends with the transaction.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
            await conn.execute(SCHEMA)
        self._schema_ready = True

    def _not_served(self, op: str, exc: BaseException | None) -> None:
        self._health.not_served(op, exc, _consequence(op, self.fail_closed))
        raise _NotServed(op)


def _consequence(op: str, fail_closed: bool) -> str:
    if op == "load":
        return "previous_response_id gets 503"
    if op == "save":
        return "the answer stands, not stored"
    return "stored requests get 503 (fail_closed)" if fail_closed else "serving (fail_open)"


def _load(response_id: str) -> Callable[[AsyncConnection], Awaitable[list]]:
    async def run(conn: AsyncConnection) -> list:
        cursor = await conn.execute(LOAD, (response_id, MAX_CHAIN, MAX_LOADED_BYTES))
        return await cursor.fetchall()

    return run


def _save(
    response_id: str, previous_id: str | None, model: str, blob: bytes
) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def run(conn: AsyncConnection) -> None:
        await conn.execute(SAVE, (response_id, previous_id, model, blob))

    return run


async def _probe(conn: AsyncConnection) -> None:
    await conn.execute("SELECT 1")


def _store_failure(exc: BaseException) -> bool:
    """Errors that mean the database did not serve: timeouts, connections, server errors."""
    import psycopg

    return isinstance(exc, psycopg.Error | OSError | TimeoutError)


def _connection_options(timeout_s: float) -> dict:
    """Each connection: autocommit (one statement a call), a connect timeout (libpq's is
    whole seconds, 2 at least), a statement timeout under the request's bound, and TCP
    keepalives so a vanished server is noticed on idle connections."""
    return {
        "autocommit": True,
        "connect_timeout": _connect_timeout(timeout_s),
        "options": f"-c statement_timeout={max(1, int(timeout_s * 1000 * 0.9))}",
        "application_name": "plano",
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


def _connect_timeout(timeout_s: float) -> int:
    return max(2, math.ceil(timeout_s))


def _describe(conninfo: str) -> tuple[str, tuple[str, ...]]:
    """`host:port/dbname` for logs, and the password to mask. Raises StateStoreError
    for a string psycopg cannot read (its message never quotes the string)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        raise StateStoreError(
            "state_storage connection_string is not a PostgreSQL connection string "
            "(postgresql://user:password@host:5432/dbname, or key=value pairs)"
        ) from None
    where = (
        f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
        f"/{params.get('dbname') or params.get('user') or ''}"
    )
    password = params.get("password")
    return where, tuple(filter(None, (str(password),) if password else ()))
