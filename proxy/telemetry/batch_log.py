"""A logging handler for hot paths: the caller only appends; a thread writes in batches.

A per-record queue listener wakes a thread for every line, and each wake-up competes
with the event loop for the GIL: on a small machine that halved the gateway's throughput
(docs/benchmarks.md). Here the writer wakes a few times a second and sends everything
pending in one write.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TextIO

DATE_FORMAT = "%H:%M:%S"


class BatchingHandler(logging.Handler):
    def __init__(self, stream: TextIO, interval_s: float = 0.1, max_pending: int = 100_000):
        super().__init__()
        self.stream = stream
        self.interval_s = interval_s
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: list[logging.LogRecord] = []
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="plano-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        # list.append is atomic under the GIL: no lock on the request path.
        if len(self._pending) < self.max_pending:
            self._pending.append(record)
        else:
            self.dropped += 1  # a stuck terminal must not grow memory without bound

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        lines = []
        for record in pending:
            try:
                lines.append(self.format(record) + "\n")
            except Exception:  # one malformed record must not stop the writer
                self.handleError(record)
        text = "".join(lines)
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: logging must not crash
            pass

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval_s)
            with contextlib.suppress(Exception):  # keep writing whatever one batch does
                self.flush()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(5)
        self.flush()
        super().close()


def configure_logging(stream: TextIO, access_log: bool, prefix: str = "") -> BatchingHandler:
    """The `plano` loggers to `stream` through a BatchingHandler (returned: close it last).

    The request path only appends a record; a thread formats and writes them in batches
    (plain writes, not rich: the access log is the hottest log there is). `prefix` marks
    the lines of one of `plano up --workers N`'s processes ("[w1] ")."""
    # The logging docs' optimizations: no caller lookup (a stack walk per record) and no
    # thread or process names, none of which these lines print.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BatchingHandler(stream)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(message)s", DATE_FORMAT))
    root = logging.getLogger("plano")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    logging.getLogger("plano.access").disabled = not access_log
    logging.getLogger("plano.gateway").setLevel(logging.WARNING)
    return handler
