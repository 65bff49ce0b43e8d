"""Conversation state for the Responses API: each response id maps to its conversation.

One row per response holds only the turn it added (the new input and the assistant's
output) and a pointer to the previous response; a conversation is read back by walking
that chain in one recursive query. SQLite calls run on one worker thread, so the event
loop never waits on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import orjson

from proxy.canonical import ImagePart, Message, TextPart, ToolCall

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    previous_id TEXT,
    created_at REAL NOT NULL,
    model TEXT,
    messages BLOB NOT NULL
);
"""
# A chain longer than this is cut at the oldest end rather than walked forever.
MAX_CHAIN = 10_000


class StateStoreError(Exception):
    """The configured store cannot be used; `plano up` reports it before serving."""


class ConversationStore(Protocol):
    async def load(self, response_id: str) -> list[Message] | None: ...

    async def save(
        self, response_id: str, previous_id: str | None, model: str, messages: list[Message]
    ) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> None:
        """Before a request whose answer will be saved: raises StoreUnavailable when the
        store is known to be down and its config says fail_closed."""


class SQLiteConversationStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plano-state")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> SQLiteConversationStore:
        try:
            await self._call(self._open)
        except (sqlite3.Error, OSError) as exc:
            self._executor.shutdown(wait=False)
            raise StateStoreError(
                f"cannot open the conversation store {self.path}: {exc}"
            ) from None
        return self

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        self._db = db

    async def load(self, response_id: str) -> list[Message] | None:
        return await self._call(self._load, response_id)

    def _load(self, response_id: str) -> list[Message] | None:
        rows = self._db.execute(
            """
            WITH RECURSIVE chain(id, previous_id, messages, depth) AS (
                SELECT id, previous_id, messages, 0 FROM responses WHERE id = ?
                UNION ALL
                SELECT r.id, r.previous_id, r.messages, c.depth + 1
                FROM responses r JOIN chain c ON r.id = c.previous_id
                WHERE c.depth < ?
            )
            SELECT messages FROM chain ORDER BY depth DESC
            """,
            (response_id, MAX_CHAIN),
        ).fetchall()
        return decode_turns(rows)

    async def save(
        self, response_id: str, previous_id: str | None, model: str, messages: list[Message]
    ) -> None:
        blob = encode_turn(messages)
        await self._call(
            self._db_execute,
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
            (response_id, previous_id, time.time(), model, blob),
        )

    async def ready(self) -> None:
        pass  # a local file: there is nothing to wait for

    def _db_execute(self, sql: str, params: tuple) -> None:
        self._db.execute(sql, params)

    async def close(self) -> None:
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        self._executor.shutdown(wait=False)  # the close above already ran on it

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


class MemoryConversationStore:
    """`state_storage: {type: memory}`: kept in this process only, lost on restart."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str | None, list[Message]]] = {}

    async def load(self, response_id: str) -> list[Message] | None:
        if response_id not in self._rows:
            return None
        turns, current = [], response_id
        while current is not None and current in self._rows and len(turns) < MAX_CHAIN:
            previous, messages = self._rows[current]
            turns.append(messages)
            current = previous
        return [m for turn in reversed(turns) for m in turn]

    async def save(
        self, response_id: str, previous_id: str | None, model: str, messages: list[Message]
    ) -> None:
        self._rows[response_id] = (previous_id, list(messages))

    async def ready(self) -> None:
        pass

    async def close(self) -> None:
        self._rows.clear()


def encode_turn(messages: list[Message]) -> bytes:
    """One response's row: the turn it added, as JSON."""
    return orjson.dumps([encode_message(m) for m in messages])


def decode_turns(rows: list) -> list[Message] | None:
    """A conversation from its rows' (blob,) tuples, oldest first; None when there are none."""
    if not rows:
        return None
    return [decode_message(m) for (blob,) in rows for m in orjson.loads(blob)]


def encode_message(message: Message) -> dict:
    return asdict(message)


def decode_message(raw: dict) -> Message:
    parts = [
        TextPart(p["text"]) if p["type"] == "text" else ImagePart(p["url"], p.get("detail"))
        for p in raw.get("content", [])
    ]
    calls = [ToolCall(c["id"], c["name"], c["arguments"]) for c in raw.get("tool_calls", [])]
    return Message(
        role=raw["role"],
        content=parts,
        tool_calls=calls,
        tool_call_id=raw.get("tool_call_id"),
        name=raw.get("name"),
    )


async def open_store(settings, metrics=None) -> ConversationStore:
    """The store a config's `state_storage` asks for; `metrics` (the telemetry sink) hears
    a shared store's health."""
    if settings.type == "memory":
        return MemoryConversationStore()
    if settings.type == "postgres":
        from proxy.state.postgres import PostgresConversationStore  # psycopg: only when used

        return await PostgresConversationStore(settings, metrics=metrics).open()
    from proxy.paths import plano_home

    path = Path(settings.path).expanduser() if settings.path else plano_home() / "state.db"
    return await SQLiteConversationStore(path).open()
