"""The telemetry worker process: everything about a request that can happen after it.

The gateway's event loop shares one interpreter lock with any thread it starts, so work
done in a thread there still slows requests. This process takes that work to another
core: it reads record batches from a pipe, and on its own threads writes the trace store,
builds spans for OTLP, updates metrics and serves the admin listener.

Threads here: the reader (pipe -> metrics -> backlog), with `plano up --workers N` one
more per gateway link (the same, in turn with the reader: Intake), the writer (backlog ->
signals, spans, store, OTLP; it alone uses the store), and the main thread's event loop for
the admin listener. The writer does nearly all the work and none of it is urgent, so it runs
at the lowest CPU priority (SCHED_IDLE): wherever it would compete with the proxy for a
CPU, the proxy wins and traces wait. The reader keeps the metrics current meanwhile, and
the backlog of traces still to build is bounded; past it traces are dropped and counted.

Messages on the socket the gateway passes as an inherited fd, each one pickled:
  parent -> worker: WorkerSettings (first), then ("batch", [TelemetryRecord, ...],
  dropped_count), ("stores", {(store, op): errors since the last}, {store: up}) or
  ("stop",)
  gateway process -> worker (`plano up --workers N`, settings.gateway_socket): the same
  batches and stores over a link of its own, then ("bye",); see gateway_links.py
  worker -> parent: ("ready", admin_port | None), ("error", message), ("stopped", stats)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import queue
import signal
import sys
import threading
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from aiohttp import web

from proxy.telemetry.processor import TelemetryProcessor
from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.settings import DEFAULT_ADMIN_PORT, WorkerSettings

if TYPE_CHECKING:
    from proxy.telemetry.gateway_links import GatewayLinks

log = logging.getLogger("plano.telemetry")

_STOP = object()
# Sampled records waiting for the writer. ~10 s of a saturated proxy on one core; the
# writer builds ~2,000-3,000 a second once it gets a CPU.
MAX_BACKLOG_RECORDS = 20_000
MAX_BACKLOG_BYTES = 64 * 1024 * 1024  # captured bodies, up to 1 MiB of response each
# At "stop" the gateway processes have exited: their links only hold what is buffered.
LINKS_CLOSE_S = 10.0


def main(conn: Connection) -> None:
    """The process entry point (started by proxy.telemetry.sink)."""
    settings: WorkerSettings = conn.recv()
    # The parent handles Ctrl-C and then tells this process to stop, after its last batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=settings.log_level, format="plano telemetry: %(levelname)s %(message)s"
    )
    try:
        asyncio.run(_serve(conn, settings))
    except Exception as exc:  # start-up failed before "ready": tell the parent why
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _serve(conn: Connection, settings: WorkerSettings) -> None:
    from proxy.telemetry.admin_app import build_admin_app
    from proxy.telemetry.metrics import GatewayMetrics

    store = _open_store(settings)
    exporter = _open_exporter(settings)
    metrics = GatewayMetrics()
    processor = TelemetryProcessor(settings, metrics, store, exporter)
    work: queue.SimpleQueue = queue.SimpleQueue()
    backlog = Backlog(work)

    runner, port = None, None
    if settings.admin_enabled:
        app = build_admin_app(
            metrics,
            ingest=lambda batch: work.put(("ingest", batch)),
            health=lambda: {"status": "ok", **asdict(processor.stats)},
        )
        # OTLP bodies are inflated by the decoder, under its size cap: not by aiohttp.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
        await runner.setup()
        try:
            site = await _bind(runner, settings)
        except OSError:
            await runner.cleanup()
            raise
        sockets = site._server.sockets if site._server else []
        port = sockets[0].getsockname()[1] if sockets else settings.admin_port

    writer = threading.Thread(
        target=_write_loop,
        args=(work, processor, backlog, settings.background),
        name="plano-telemetry-writer",
    )
    writer.start()
    intake = Intake(processor, backlog)
    links = None
    if settings.gateway_socket is not None:
        from proxy.telemetry.gateway_links import GatewayLinks

        links = GatewayLinks(
            settings.gateway_socket, settings.gateway_authkey or b"", intake.take, intake.stores
        )
    conn.send(("ready", port))
    reader = threading.Thread(
        target=_read_loop,
        args=(conn, work, intake, links),
        name="plano-telemetry-reader",
        daemon=True,
    )
    reader.start()
    try:
        await asyncio.to_thread(writer.join)
    finally:
        if runner is not None:
            await runner.cleanup()
        if exporter is not None:
            exporter.shutdown()  # flushes what the batch processor still holds
        if store is not None:
            store.close()
    with contextlib.suppress(OSError):
        conn.send(("stopped", asdict(processor.stats)))


async def _bind(runner: web.AppRunner, settings: WorkerSettings) -> web.TCPSite:
    """The configured port; the default one, unless it is taken (then any free port)."""
    address, port = settings.admin_address, settings.admin_port
    candidates = [port] if port is not None else [DEFAULT_ADMIN_PORT, 0]
    for candidate in candidates:
        site = web.TCPSite(runner, address, candidate)
        try:
            await site.start()
            return site
        except OSError as exc:
            if candidate != candidates[-1]:
                log.warning("admin port %d is taken; using a free port instead", candidate)
                continue
            raise OSError(
                f"cannot listen on {address}:{candidate} for the admin listener "
                f"({exc.strerror or exc}); set admin.port to a free port, or "
                "admin.enabled: false"
            ) from None
    raise AssertionError("unreachable")


class Backlog:
    """Sampled records queued for the writer, bounded by count and by captured bytes."""

    def __init__(
        self,
        work: queue.SimpleQueue,
        max_records: int = MAX_BACKLOG_RECORDS,
        max_bytes: int = MAX_BACKLOG_BYTES,
    ):
        self.work = work
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def offer(self, records: list[TelemetryRecord]) -> int:
        """Queue as many of the records as fit, oldest first; returns how many were not."""
        sizes = [_body_bytes(r) for r in records]
        with self._lock:
            room = self.max_records - self.records
            taken = size = 0
            # Whole-or-nothing would drop a large batch (the sink ships everything pending
            # after a stall in one message) for want of a little room.
            while taken < min(room, len(records)) and self.bytes + size + sizes[taken] <= (
                self.max_bytes
            ):
                size += sizes[taken]
                taken += 1
            self.records += taken
            self.bytes += size
        if taken:
            self.work.put(("trace", records[:taken], size))
        return len(records) - taken

    def done(self, count: int, size: int) -> None:
        with self._lock:
            self.records -= count
            self.bytes -= size


def _body_bytes(record: TelemetryRecord) -> int:
    return len(record.request_body or b"") + len(record.response_body or b"")


class Intake:
    """Batches and stores' health into the metrics and the backlog, one reader at a time:
    the pipe's reader and every gateway link's reader share the processor's counters and
    the metrics' series caps."""

    def __init__(self, processor: TelemetryProcessor, backlog: Backlog):
        self.processor = processor
        self.backlog = backlog
        self._lock = threading.Lock()

    def take(self, records: list[TelemetryRecord], dropped: int) -> None:
        with self._lock:
            try:
                sampled = self.processor.observe(records, dropped)
                refused = self.backlog.offer(sampled) if sampled else 0
            except Exception:  # the reader must outlive any one batch
                log.exception("telemetry: a batch failed")
                return
            if refused:
                self.processor.drop(refused)

    def stores(self, errors: dict, up: dict) -> None:
        with self._lock:
            self.processor.metrics.observe_stores(errors, up)


def _read_loop(
    conn: Connection,
    work: queue.SimpleQueue,
    intake: Intake,
    links: GatewayLinks | None = None,
) -> None:
    try:
        while True:
            try:
                message = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):  # the gateway is gone: write what arrived, then stop
                break
            if message[0] == "stop":
                break
            if message[0] == "batch":
                intake.take(message[1], message[2])
            elif message[0] == "stores":
                intake.stores(message[1], message[2])
    except BaseException:
        # A message this process cannot read (or no memory for it): without the reader
        # nothing gets in, so stop; the gateway starts a new worker and counts the loss.
        log.exception("telemetry: the reader failed; the worker stops")
        raise
    finally:
        if links is not None:  # what the gateway processes sent before they stopped
            links.close(LINKS_CLOSE_S)
        work.put(_STOP)  # the writer finishes what is queued, then the worker exits


def _write_loop(
    work: queue.SimpleQueue, processor: TelemetryProcessor, backlog: Backlog, background: bool
) -> None:
    if background:
        _run_in_background()
    while True:
        item = work.get()
        if item is _STOP:
            return
        try:
            if item[0] == "trace":
                processor.trace(item[1])
            elif item[0] == "ingest":  # OTLP from the admin listener
                processor.ingest(item[1])
        except Exception:  # keep the writer alive whatever one batch does
            log.exception("telemetry: a batch failed")
        finally:
            if item[0] == "trace":
                backlog.done(len(item[1]), item[2])


def _run_in_background() -> None:
    """Give the calling thread (only it: Linux keeps these per thread) the lowest CPU
    priority: SCHED_IDLE where there is one, else nice 19. Neither needs privileges."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, 0, 19)


def _open_store(settings: WorkerSettings):
    if not settings.store_enabled:
        return None
    from proxy.telemetry.store import TraceStore

    store = TraceStore.open(
        settings.store_path,
        retention_days=settings.retention_days,
        max_requests=settings.max_traces,
    )
    store.prune()  # start within the limits even if the config tightened them
    return store


def _open_exporter(settings: WorkerSettings):
    from proxy.telemetry.otlp_export import exporter_for

    exporter = exporter_for(settings.otlp_endpoint)
    if exporter is None:
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter)


if __name__ == "__main__":
    main(Connection(int(sys.argv[1])))
