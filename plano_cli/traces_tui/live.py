"""The list's live update: requests that reached the store since it was read, each once.

Finding them is `plano traces tail`'s job (traces_cli.tail.Tailer): a summary is written
when its request ends, so every poll re-reads a window of recent start times and skips the
trace ids it has already returned. What the tailer finds is then held to the list's
filter: by `Filters.matches` on the summary, or, for a text search (messages are not in a
summary), by asking the store which of those requests match.
"""

from __future__ import annotations

import math
import threading

from plano_cli.traces_cli.args import Filters
from plano_cli.traces_cli.tail import WINDOW_S, Tailer
from plano_cli.traces_tui.loader import PAGE, StoreReader, order, reading
from proxy.telemetry.store import RequestRow, TraceStore


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
        request written in between comes from both (the list drops the repeat) and from
        neither is impossible."""
        with self._lock, reading(self._path):
            self._tailer.prime()

    def poll(self) -> list[RequestRow] | None:
        """New matching requests, newest first; None when a poll is already running."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._closed:
                return None
            with reading(self._path):
                found = self._tailer.poll()
                kept = self._matching(found)
        finally:
            self._lock.release()
        return sorted(kept, key=order, reverse=True)

    def close(self) -> None:
        """Waits for a poll under way: call it from a worker thread, not the UI's."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._store.close()

    def _matching(self, rows: list[RequestRow]) -> list[RequestRow]:
        filters = self._filters
        if filters.text is None:
            return [row for row in rows if filters.matches(row)]
        if not rows:
            return []
        ids = self._text_matches(rows)
        return [row for row in rows if row.trace_id in ids]

    def _text_matches(self, rows: list[RequestRow]) -> set[str]:
        """The ids among `rows` the store's own search matches, read over their span of
        start times only (the index's range, not the table)."""
        kwargs = self._filters.store_kwargs()
        low = min(row.started_at for row in rows)
        kwargs["since"] = max(low, kwargs["since"] if kwargs["since"] is not None else low)
        until = math.nextafter(max(row.started_at for row in rows), math.inf)
        found: set[str] = set()
        before: tuple[float, str] | None = None
        while True:
            page = self._store.list_requests(**kwargs, until=until, limit=PAGE, before=before)
            found.update(row.trace_id for row in page)
            if len(page) < PAGE:
                return found
            before = order(page[-1])
