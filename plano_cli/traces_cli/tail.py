"""`plano traces tail`: report calls (requests through the gateway) as they reach the
store. Its unit is a call, not a trace: a trace has no end to wait for (an agent's run can
always make one more call), so each call is reported when it ends, with its trace id.

The store's tail cursor is a call's start time (`newest_after`), but a call is written
when it ends: a slow call that started before the last one seen would never come back from
a cursor on the newest start. So each poll re-reads a window reaching WINDOW_S before the
newest start seen, and calls already reported within it are skipped. A call running longer
than the window can still be missed; the cost of a wider one is re-reading more rows on
every poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from proxy.telemetry.store import RequestRow, TraceStore

POLL_S = 0.5
WINDOW_S = 120.0
PAGE = 500


def pause(seconds: float) -> None:
    """The wait between polls; tests replace it to act between two polls."""
    time.sleep(seconds)


class Tailer:
    """Finds the calls not yet reported, each once.

    `since`: report calls that started at or after it, even those already stored (a
    backfill); None: only those whose summary arrives after `prime()`.
    """

    def __init__(
        self,
        store: TraceStore,
        *,
        since: float | None = None,
        window_s: float = WINDOW_S,
        page: int = PAGE,
        now: float | None = None,
    ):
        self._store = store
        self._since = since
        self._window_s = window_s
        self._page = page
        # The newest start seen: the window hangs back from it, not from the clock, so a
        # quiet spell does not let the window slide past a slow request.
        self._high = since if since is not None else (time.time() if now is None else now)
        self._seen: dict[str, float] = {}  # call (span id) -> start, for those in the window

    def prime(self) -> None:
        """Mark what is already stored as seen, so that only new calls are reported."""
        if self._since is None:
            self.poll()

    def poll(self) -> list[RequestRow]:
        """New summaries, oldest start first."""
        floor = self._high - self._window_s
        cursor: tuple[float, str] = (floor, "")
        found: list[RequestRow] = []
        while True:
            rows = self._store.newest_after(*cursor, limit=self._page)
            for row in rows:
                key = row.span_id or row.trace_id
                if key in self._seen:
                    continue
                self._seen[key] = row.started_at
                self._high = max(self._high, row.started_at)
                if self._since is None or row.started_at >= self._since:
                    found.append(row)
            if len(rows) < self._page:
                break
            cursor = (rows[-1].started_at, rows[-1].span_id or "")
        # Ids that fell out of the window can never be returned again: forget them.
        floor = self._high - self._window_s
        self._seen = {t: s for t, s in self._seen.items() if s >= floor}
        return found

    @property
    def remembered(self) -> int:
        return len(self._seen)


def follow(
    tailer: Tailer,
    emit: Callable[[RequestRow], None],
    *,
    keep: Callable[[RequestRow], bool] = lambda _row: True,
    limit: int | None = None,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_polls: int | None = None,
) -> int:
    """Poll until `limit` calls are emitted, `should_stop()` says so or `max_polls` ran
    out; Ctrl-C (KeyboardInterrupt) is the caller's to catch. Returns how many were emitted."""
    wait = sleep or pause
    emitted = polls = 0
    while True:
        for row in tailer.poll():
            if keep(row):
                emit(row)
                emitted += 1
                if limit is not None and emitted >= limit:
                    return emitted
        polls += 1
        if (max_polls is not None and polls >= max_polls) or (should_stop and should_stop()):
            return emitted
        wait(poll_s)
