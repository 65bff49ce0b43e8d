"""The viewer's reads of the trace store, made in worker threads, never on the UI's.

A TraceStore is one sqlite3 connection, to be used by one thread at a time, and workers
overlap (a page may still be loading when the filter changes): each read borrows a
connection no other thread holds from a small pool, and opens one when none is free. In
WAL mode readers block neither the gateway writing nor each other.

Pages are read newest first with the store's keyset cursor, so the hundredth page costs
what the first does, and nothing ever counts or reads the whole table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plano_cli.traces_cli.args import Filters
from proxy.telemetry.store import TraceDetail, TraceRow, TraceStore, TraceStoreError

PAGE = 200
_IDLE_MAX = 2  # connections kept open between reads


class StoreUnreadable(Exception):
    """The store cannot be opened or read: a corrupt file, no permission, a newer schema."""


def order(row: TraceRow) -> tuple[float, str]:
    """The store's order and keyset cursor: newest first is the largest first."""
    return (row.started_at, row.trace_id)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """SQLite's and the file system's errors while reading, as StoreUnreadable."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnreadable(f"cannot read the trace store {path}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[TraceRow]
    more: bool  # another page follows


class StoreReader:
    def __init__(self, path: Path, *, page_size: int = PAGE) -> None:
        self.path = path
        self.page_size = page_size
        self._idle: list[TraceStore] = []
        self._lock = threading.Lock()
        self._closed = False

    def exists(self) -> bool:
        return self.path.exists()

    def page(self, filters: Filters, before: tuple[float, str] | None = None) -> Page:
        """The newest matching traces older than `before` (all of them when None)."""
        with self.borrow() as store:
            rows = store.list_traces(
                **filters.store_kwargs(), limit=self.page_size + 1, before=before
            )
        return Page(rows[: self.page_size], len(rows) > self.page_size)

    def is_empty(self) -> bool:
        """Whether the store holds no trace at all: one indexed row, not a count."""
        with self.borrow() as store:
            return not store.list_traces(limit=1)

    def trace(self, trace_id: str) -> TraceDetail | None:
        with self.borrow() as store:
            return store.get_trace(trace_id)

    def open_store(self) -> TraceStore:
        """A connection of the caller's own, to keep (the live feed's)."""
        if not self.path.exists():
            # TraceStore.open would create it: a reader leaves no file behind.
            raise StoreUnreadable(f"the trace store {self.path} is gone")
        try:
            return TraceStore.open(self.path, read_only=True)
        except TraceStoreError as exc:
            raise StoreUnreadable(str(exc)) from None

    @contextmanager
    def borrow(self) -> Iterator[TraceStore]:
        """A connection for one read; store errors come out as StoreUnreadable."""
        with self._lock:
            store = self._idle.pop() if self._idle else None
        if store is None:
            store = self.open_store()
        try:
            with reading(self.path):
                yield store
        except BaseException:
            store.close()  # it may be what failed: not given back
            raise
        with self._lock:
            if not self._closed and len(self._idle) < _IDLE_MAX:
                self._idle.append(store)
                return
        store.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for store in idle:
            store.close()
