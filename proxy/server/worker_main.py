"""One gateway process of `plano up --workers N` (started by proxy.server.supervisor).

It serves the parent's Config as `plano up` does in one process, with two differences: its
listeners bind with SO_REUSEPORT, so the N processes share each port and the kernel spreads
connections over them; and its telemetry records go to the one telemetry worker the parent
started (`HubSink`), so there is one trace store and one /metrics. Local models run in the
parent: the Config arrives with their URLs filled in.

Messages on the socket inherited from the parent (fd in argv), each one pickled:
  parent -> worker: WorkerSpec
  worker -> parent: ("ready", WorkerReport) or ("error", message)
The worker stops gracefully on SIGTERM, or when that socket closes (the parent is gone: a
worker must not outlive it and keep serving). SIGINT is the parent's to handle: Ctrl-C in a
terminal reaches the whole process group, and the parent then stops the workers in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import io
import os
import pickle
import signal
import sys
import types
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from proxy.config.model import Config
from proxy.telemetry.settings import WorkerSettings


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    config: Config  # local models' URLs filled in, port 0 listeners bound to the first's port
    shutdown_timeout: float
    telemetry: WorkerSettings | None
    access_log: bool


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """What the parent shows at start-up, from its first worker."""

    pid: int
    ports: dict[str, int]  # listener name -> bound port
    router_notes: list[str] | None = None
    # listener name -> (agent ids, default agent, who picks them, its router service's notes)
    orchestrators: dict[str, tuple[tuple[str, ...], str, str, list[str]]] = field(
        default_factory=dict
    )


def _mapping_proxy(items: dict) -> types.MappingProxyType:
    return types.MappingProxyType(items)


def encode(value: object) -> bytes:
    """Pickle, with the read-only mappings the typed Config uses (pickle lacks them)."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {
        **copyreg.dispatch_table,
        types.MappingProxyType: lambda m: (_mapping_proxy, (dict(m),)),
    }
    pickler.dump(value)
    return buffer.getvalue()


def main(conn: Connection) -> int:
    spec: WorkerSpec = pickle.loads(conn.recv_bytes())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from proxy.server.event_loop import run
    from proxy.telemetry.batch_log import configure_logging

    log_writer = configure_logging(sys.stderr, spec.access_log, prefix=f"[w{spec.index}] ")
    try:
        return run(_serve(conn, spec))
    finally:
        log_writer.close()


async def _serve(conn: Connection, spec: WorkerSpec) -> int:
    from proxy.embedded.local_model import LocalModelError
    from proxy.server.runner import ProxyServer
    from proxy.state.conversations import StateStoreError
    from proxy.upstream.targets import TargetError

    server = ProxyServer(
        spec.config,
        shutdown_timeout=spec.shutdown_timeout,
        telemetry=spec.telemetry,
        reuse_port=True,
    )
    try:
        await server.start()
    except (LocalModelError, TargetError, StateStoreError) as exc:
        _send(conn, ("error", str(exc)))
        return 1
    except OSError as exc:
        _send(conn, ("error", f"cannot listen: {exc.strerror or exc}"))
        return 1
    _send(conn, ("ready", _report(server)))
    try:
        await until_parent_says_stop(conn)
    finally:
        await server.stop()
    return 0


async def until_parent_says_stop(conn: Connection) -> None:
    """Returns on SIGTERM, on any message from the parent, or when the parent is gone
    (EOF makes the pipe readable as a message does)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(conn.fileno(), stop.set)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(conn.fileno())
        loop.remove_signal_handler(signal.SIGTERM)


def _report(server) -> WorkerReport:
    orchestrators = {
        name: (
            orchestrator.ids,
            orchestrator.default,
            orchestrator.describe(),
            list(orchestrator.service.notes) if orchestrator.service is not None else [],
        )
        for name, orchestrator in server.orchestrators.items()
    }
    return WorkerReport(
        pid=os.getpid(),
        ports={bound.listener.name: bound.port for bound in server.bound},
        router_notes=list(server.router.notes) if server.router is not None else None,
        orchestrators=orchestrators,
    )


def _send(conn: Connection, message: tuple) -> None:
    with contextlib.suppress(OSError):
        conn.send_bytes(pickle.dumps(message))


if __name__ == "__main__":
    # Through the module's own name, not __main__: what it pickles must unpickle as
    # proxy.server.worker_main's classes in the parent.
    from proxy.server import worker_main

    sys.exit(worker_main.main(Connection(int(sys.argv[1]))))
