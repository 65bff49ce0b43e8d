"""The gateway's end of the telemetry pipe: queue records, ship them in batches.

`put` is a list append, the only telemetry work a request pays for after its record is
made. A sender thread wakes a few times a second and ships everything pending in one
pickled message: one wake-up per interval, not per request, because every wake-up
competes with the event loop for the interpreter lock.

The worker process is started here. If it dies, records are counted as dropped and it
is started again, at most once per RESTART_INTERVAL_S; requests never wait for it.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.settings import WorkerSettings

log = logging.getLogger("plano.telemetry")

RESTART_INTERVAL_S = 10.0
# How much may wait for the worker to read it (it reads at once unless it is stopped,
# dead or starved of CPU; its own backlog of traces to build is bounded separately). Past
# either bound records are dropped and counted, and the memory stays bounded.
MAX_PENDING = 20_000
MAX_PENDING_BYTES = 64 * 1024 * 1024  # captured bodies: up to 1 MiB of response each
STOP_TIMEOUT_S = 30.0


class TelemetryStartError(Exception):
    """The worker could not start: its message says why (a port in use, a bad store)."""


class ProcessSink:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        interval_s: float = 0.05,
        max_pending: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        restart_interval_s: float = RESTART_INTERVAL_S,
    ):
        self.settings = settings
        self.interval_s = interval_s
        self.restart_interval_s = restart_interval_s
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.admin_port: int | None = None
        self.sent = 0
        self.dropped = 0
        self.worker_stats: dict | None = None  # what the worker reported when it stopped
        self._pending: list[TelemetryRecord] = []
        self._pending_bytes = 0
        # Sends come from the sender thread and, at close, from the closing thread: one
        # message must not be interleaved with another on the socket.
        self._send_lock = threading.Lock()
        self._unreported_drops = 0
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._wake = threading.Event()
        self._closing = False
        self._sender: threading.Thread | None = None
        self._last_start = 0.0
        # Shared stores' health (state/shared.py), from the event loop: cumulative counts
        # and the last state, shipped as changes by the sender thread.
        self._store_errors: dict[tuple[str, str], int] = {}
        self._store_up: dict[str, bool] = {}
        self._shipped_errors: dict[tuple[str, str], int] = {}
        self._shipped_up: dict[str, bool] = {}

    # -- lifecycle -----------------------------------------------------------------------

    def launch(self) -> None:
        """Start the worker process; `wait_ready` then waits for it. Both block briefly:
        call them from a thread, not the event loop."""
        # A plain `python -m` child with an inherited socket, not multiprocessing's spawn:
        # spawn re-imports the parent's __main__, which breaks (or re-runs) any script
        # that embeds the gateway without a __main__ guard.
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy.telemetry.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the gateway, which then stops us
        )
        theirs.close()
        conn = Connection(ours.detach())
        conn.send(self.settings)
        self._process, self._conn = process, conn
        self._last_start = time.monotonic()
        self._shipped_up = {}  # a new worker's gauges start unset: send them again

    def wait_ready(self, timeout_s: float = 60.0) -> int | None:
        """The admin port the worker listens on (None when disabled).

        Raises TelemetryStartError when the worker fails or does not answer in time.
        """
        assert self._conn is not None
        assert self._process is not None
        if not self._conn.poll(timeout_s):
            self._kill()
            raise TelemetryStartError(f"the telemetry worker did not start in {timeout_s:.0f}s")
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            self._kill()
            raise TelemetryStartError(
                f"the telemetry worker exited at start (exit code {self._process.poll()})"
            ) from None
        if kind != "ready":
            self._kill()
            raise TelemetryStartError(str(value))
        self.admin_port = value
        if self._sender is None:
            self._sender = threading.Thread(target=self._run, name="plano-telemetry", daemon=True)
            self._sender.start()
        return value

    def start(self, timeout_s: float = 60.0) -> int | None:
        self.launch()
        return self.wait_ready(timeout_s)

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ship what is pending, let the worker write it, and wait for it to exit: all of
        it within `timeout_s`, which bounds the gateway's shutdown."""
        deadline = time.monotonic() + timeout_s

        def left() -> float:
            return max(deadline - time.monotonic(), 0.0)

        self._closing = True
        self._wake.set()
        if self._sender is not None:
            self._sender.join(left())
        conn, process = self._conn, self._process
        # A sender still stuck in a send (a worker that stopped reading) holds the lock:
        # then what is pending is lost, and said so, rather than shutdown hanging.
        if not self._send_lock.acquire(timeout=left()):
            lost = len(self._pending) + self._unreported_drops
            self.dropped += lost
            log.warning("telemetry worker is not reading; %d records dropped", lost)
            self._kill()
            if conn is not None:
                conn.close()
            self._conn = self._process = None
            return
        try:
            self._ship_locked()
            if conn is None or process is None:
                return
            with contextlib.suppress(OSError):
                conn.send_bytes(pickle.dumps(("stop",)))
        finally:
            self._send_lock.release()
        try:
            if conn.poll(left()):
                kind, value = conn.recv()
                if kind == "stopped":
                    self.worker_stats = value
        except (EOFError, OSError):
            pass
        try:
            process.wait(max(left(), 0.5))  # once "stopped" came, it is only exiting
        except subprocess.TimeoutExpired:
            # Its backlog of traces still to write is lost with it: the log says so.
            log.warning(
                "telemetry worker did not finish writing traces in %.0fs; terminating it "
                "(traces it had not written are lost)",
                timeout_s,
            )
            self._kill()
        conn.close()
        self._conn = self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- the request path ----------------------------------------------------------------

    def put(self, record: TelemetryRecord) -> None:
        # list.append is atomic under the GIL: no lock on the request path. The byte count
        # may miss a little when the sender swaps the list meanwhile: it is a soft bound.
        size = len(record.request_body or b"") + len(record.response_body or b"")
        if (
            len(self._pending) < self.max_pending
            and self._pending_bytes + size <= self.max_pending_bytes
        ):
            self._pending.append(record)
            self._pending_bytes += size
        else:
            self._unreported_drops += 1  # the worker is behind: shed load, never block

    def store_error(self, store: str, op: str) -> None:
        """An operation a shared store did not serve (proxy.state.shared.StoreMetrics)."""
        self._store_errors[store, op] = self._store_errors.get((store, op), 0) + 1

    def store_up(self, store: str, up: bool) -> None:
        self._store_up[store] = up

    # -- the sender thread ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self.interval_s)
            try:
                self._ship()
            except Exception:  # the sender must outlive any one batch
                log.exception("telemetry: could not ship a batch")

    def _ship(self) -> None:
        with self._send_lock:
            self._ship_locked()

    def _ship_locked(self) -> None:
        self._ship_records()
        self._ship_stores()

    def _ship_stores(self) -> None:
        # dict() copies under the interpreter lock: a consistent snapshot.
        errors, up = dict(self._store_errors), dict(self._store_up)
        deltas = {k: n - self._shipped_errors.get(k, 0) for k, n in errors.items()}
        deltas = {k: n for k, n in deltas.items() if n}
        changed = {k: v for k, v in up.items() if self._shipped_up.get(k) is not v}
        if not deltas and not changed:
            return
        if not self._alive() and not self._restart():
            return  # counted on the next ship, to the restarted worker
        assert self._conn is not None
        try:
            self._conn.send_bytes(pickle.dumps(("stores", deltas, up), pickle.HIGHEST_PROTOCOL))
        except OSError:
            self._broken()
            return
        self._shipped_errors, self._shipped_up = errors, up

    def _ship_records(self) -> None:
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        drops, self._unreported_drops = self._unreported_drops, 0
        if not pending and not drops:
            return
        if not self._alive() and not self._restart():
            self.dropped += len(pending) + drops
            return
        assert self._conn is not None
        try:
            self._conn.send_bytes(pickle.dumps(("batch", pending, drops), pickle.HIGHEST_PROTOCOL))
        except OSError:
            self.dropped += len(pending) + drops
            self._broken()
            return
        self.sent += len(pending)
        self.dropped += drops

    def ensure_running(self) -> None:
        """Start the worker again if it died (at most once per restart interval): for an
        owner that ships no records itself, such as the `plano up --workers` parent."""
        with self._send_lock:
            if not self._alive():
                self._restart()

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _broken(self) -> None:
        """A send failed: the process is dying; `_alive` will say so."""

    def _restart(self) -> bool:
        if self._closing or time.monotonic() - self._last_start < self.restart_interval_s:
            return False
        exit_code = self._process.poll() if self._process is not None else None
        log.error("telemetry worker exited (code %s); starting it again", exit_code)
        if self._conn is not None:
            self._conn.close()
        try:
            self.launch()
            self.wait_ready()
        except TelemetryStartError as exc:
            log.error("telemetry worker could not start again: %s", exc)
            return False
        return True

    def _kill(self) -> None:
        if self._alive():
            assert self._process is not None
            self._process.kill()
            self._process.wait(5)


class HubSink(ProcessSink):
    """A gateway process's end under `plano up --workers N`: the records go to the one
    telemetry worker the parent started, over a link to its socket (gateway_links.py).

    The parent restarts that worker if it dies; this side only connects again, at most once
    per `restart_interval_s`, dropping and counting what came meanwhile."""

    def __init__(self, settings: WorkerSettings, *, restart_interval_s: float = 1.0, **kwargs):
        if settings.gateway_socket is None:
            raise ValueError("HubSink needs settings.gateway_socket")
        super().__init__(settings, restart_interval_s=restart_interval_s, **kwargs)

    def launch(self) -> None:
        from multiprocessing.connection import Client

        self._last_start = time.monotonic()
        try:
            self._conn = Client(
                self.settings.gateway_socket,
                family="AF_UNIX",
                authkey=self.settings.gateway_authkey or b"",
            )
        except (OSError, EOFError) as exc:
            raise TelemetryStartError(f"cannot reach the telemetry worker: {exc}") from None
        # Linked again, maybe to a telemetry worker started again: its gauges start unset.
        self._shipped_up = {}

    def wait_ready(self, timeout_s: float = 60.0) -> int | None:
        if self._sender is None:
            self._sender = threading.Thread(target=self._run, name="plano-telemetry", daemon=True)
            self._sender.start()
        return None  # the parent knows the admin port

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ship what is pending and say goodbye; the parent's worker writes it."""
        deadline = time.monotonic() + timeout_s
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            self._sender.join(max(deadline - time.monotonic(), 0.0))
        if not self._send_lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            log.warning("telemetry worker is not reading; %d records dropped", len(self._pending))
            return
        try:
            self._ship_locked()
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send_bytes(pickle.dumps(("bye",)))
                self._conn.close()
                self._conn = None
        finally:
            self._send_lock.release()

    @property
    def pid(self) -> int | None:
        return None

    def _alive(self) -> bool:
        return self._conn is not None

    def _broken(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None

    def _restart(self) -> bool:
        if self._closing or time.monotonic() - self._last_start < self.restart_interval_s:
            return False
        try:
            self.launch()
        except TelemetryStartError as exc:
            log.error("telemetry: %s", exc)
            return False
        log.warning("telemetry: connected to the telemetry worker again")
        return True

    def _kill(self) -> None:
        self._broken()
