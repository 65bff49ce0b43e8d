"""The telemetry worker's end of `plano up --workers N`: record links from gateway processes.

With several gateway processes there is still one telemetry worker, started by the `plano
up` parent: it alone writes the trace store and serves /metrics, so counters are added up
and histograms merged by construction (one registry sees every record), and SQLite has one
writer. Each gateway process connects here (a Unix socket in a private directory, with a
key) and sends the same pickled batches the single-process gateway sends over its pipe.

A gateway that dies just closes its link; the one that replaces it connects again. A link
never stops the worker: only the parent's own pipe says "stop".
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import AuthenticationError, Connection, Listener

from proxy.telemetry.record import TelemetryRecord

log = logging.getLogger("plano.telemetry")

Take = Callable[[list[TelemetryRecord], int], None]
# Shared stores' health from a gateway: {(store, op): errors since the last}, {store: up}.
Stores = Callable[[dict, dict], None]


class GatewayLinks:
    """`take` and `stores` are called from every link's own reader thread: they must be
    safe to call from several threads at once (the worker's Intake serializes them)."""

    def __init__(self, address: str, authkey: bytes, take: Take, stores: Stores | None = None):
        self._take = take
        self._stores = stores
        # Left by a telemetry worker that died: this one takes its place.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)
        self._listener = Listener(address, family="AF_UNIX", authkey=authkey)
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        # A daemon: accept() cannot be woken portably; the process exit ends it.
        threading.Thread(target=self._accept, name="plano-telemetry-links", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (AuthenticationError, EOFError, ConnectionError) as exc:
                log.warning("telemetry: refused a link: %s", exc)
                continue
            except OSError:
                if self._closed:
                    return
                log.exception("telemetry: accepting a gateway link failed")
                time.sleep(0.5)
                continue
            if self._closed:
                conn.close()
                return
            reader = threading.Thread(
                target=self._read, args=(conn,), name="plano-telemetry-link", daemon=True
            )
            with self._lock:
                self._readers = [r for r in self._readers if r.is_alive()]
                self._readers.append(reader)
            reader.start()

    def _read(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    message = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):  # the gateway exited (or was killed)
                    return
                except Exception:
                    log.exception("telemetry: an unreadable message; closing that link")
                    return
                if message[0] == "bye":
                    return
                if message[0] == "batch":
                    self._take(message[1], message[2])
                elif message[0] == "stores" and self._stores is not None:
                    self._stores(message[1], message[2])

    def close(self, timeout_s: float) -> None:
        """Stop accepting, then let every link read what its gateway sent before it went
        away (the parent stops the gateways first, so their links are at their end)."""
        self._closed = True
        self._listener.close()  # also removes the socket file
        deadline = time.monotonic() + timeout_s
        with self._lock:
            readers = list(self._readers)
        for reader in readers:
            reader.join(max(deadline - time.monotonic(), 0.0))
        if any(reader.is_alive() for reader in readers):
            log.warning("telemetry: a gateway link was still open at shutdown")
