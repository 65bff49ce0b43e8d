"""The telemetry worker process: everything about a request that can happen after it.

The gateway's event loop shares one interpreter lock with any thread it starts, so work
done in a thread there still slows requests. This process takes that work to another
core: it reads record batches from a pipe, and on its own threads writes the trace store,
builds spans for OTLP, updates metrics and serves the admin listener.

Threads here: the reader (pipe -> queue), the writer (queue -> processor; it alone uses
the store), and the main thread's event loop for the admin listener.

Messages on the socket the gateway passes as an inherited fd, each one pickled:
  parent -> worker: WorkerSettings (first), then ("batch", [TelemetryRecord, ...],
  dropped_count) or ("stop",)
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

from aiohttp import web

from proxy.telemetry.settings import DEFAULT_ADMIN_PORT, WorkerSettings

log = logging.getLogger("plano.telemetry")

_STOP = object()
# Batches read ahead of the writer. Beyond these the reader stops reading, so a backlog
# waits in the gateway's bounded sink (where it is counted and capped), not here.
MAX_QUEUED_BATCHES = 4


def main(conn: Connection) -> None:
    """The process entry point (started by proxy.telemetry.sink)."""
    settings: WorkerSettings = conn.recv()
    _lower_priority(settings.nice)
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
    from proxy.telemetry.processor import TelemetryProcessor

    store = _open_store(settings)
    exporter = _open_exporter(settings)
    metrics = GatewayMetrics()
    processor = TelemetryProcessor(settings, metrics, store, exporter)
    work: queue.SimpleQueue = queue.SimpleQueue()
    room = threading.BoundedSemaphore(MAX_QUEUED_BATCHES)

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
        target=_write_loop, args=(work, processor, room), name="plano-telemetry-writer"
    )
    writer.start()
    conn.send(("ready", port))
    reader = threading.Thread(
        target=_read_loop, args=(conn, work, room), name="plano-telemetry-reader", daemon=True
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


def _read_loop(conn: Connection, work: queue.SimpleQueue, room: threading.Semaphore) -> None:
    while True:
        room.acquire()  # released by the writer when it is done with a batch
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the gateway is gone: write what arrived, then stop
            break
        if message[0] == "stop":
            break
        work.put(message)
    work.put(_STOP)


def _write_loop(work: queue.SimpleQueue, processor, room: threading.Semaphore) -> None:
    while True:
        item = work.get()
        if item is _STOP:
            return
        try:
            if item[0] == "batch":
                processor.process(item[1], item[2])
            elif item[0] == "ingest":  # OTLP from the admin listener: not the reader's
                processor.ingest(item[1])
        except Exception:  # keep the writer alive whatever one batch does
            log.exception("telemetry: a batch failed")
        finally:
            if item[0] != "ingest":  # the reader's: give its slot back
                room.release()


def _lower_priority(nice: int) -> None:
    """Run at `nice` (on Linux, per thread: so before any thread starts, which inherit
    it). Never raises priority, and a platform without it just runs at the default."""
    with contextlib.suppress(OSError, AttributeError):
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, 0, nice)


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
