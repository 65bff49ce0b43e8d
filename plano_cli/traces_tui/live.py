"""The list's live update: traces that gained a call since the list was read.

Finding new calls is `plano traces tail`'s job (traces_cli.tail.Tailer): a call is written
when it ends, so every poll re-reads a window of recent start times and skips the calls it
has already returned. Their traces are then read again, added up with the new calls, and
held to the list's filter by the store's own query (`list_traces(trace_ids=...)`): what
the live update shows is what a reload would.
"""

from __future__ import annotations

import threading

from plano_cli.traces_cli.args import Filters
from plano_cli.traces_cli.tail import WINDOW_S, Tailer
from plano_cli.traces_tui.loader import StoreReader, order, reading
from proxy.telemetry.store import TraceRow, TraceStore

# Traces asked for at once: an IN list of this many stays far below SQLite's limit.
CHUNK = 500


class LiveFeed:
    """Owns a connection, used by one poll at a time (polls run in worker threads)."""

    def __init__(
        self, reader: StoreReader, filters: Filters, *, now: float, window_s: float = WINDOW_S
    ) -> None:
        self._path = reader.path
        self._store: TraceStore = reader.open_store()
        self._filters = filters
        self._tailer = Tailer(self._store, window_s=window_s, now=now)
        self._lock = threading.Lock()
        self._closed = False

    def prime(self) -> None:
        """Take what is stored now as seen: call it before reading the first page, so a
        call written in between comes from both (the list keeps one row a trace) and from
        neither is impossible."""
        with self._lock, reading(self._path):
            self._tailer.prime()

    def poll(self) -> list[TraceRow] | None:
        """The matching traces that gained calls, as they are now, newest first; None when
        a poll is already running."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._closed:
                return None
            with reading(self._path):
                ids = list(dict.fromkeys(call.trace_id for call in self._tailer.poll()))
                kept: list[TraceRow] = []
                for i in range(0, len(ids), CHUNK):
                    chunk = ids[i : i + CHUNK]
                    kept += self._store.list_traces(
                        **self._filters.store_kwargs(), trace_ids=chunk, limit=len(chunk)
                    )
        finally:
            self._lock.release()
        return sorted(kept, key=order, reverse=True)

    def close(self) -> None:
        """Waits for a poll under way: call it from a worker thread, not the UI's."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._store.close()
