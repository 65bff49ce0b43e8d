"""`plano up --workers N`: N gateway processes sharing each listener port, supervised.

The parent starts what must exist once, then the workers:
- local models (llama.cpp servers): one per model, whatever N; workers get their URLs;
- the telemetry worker: one trace store, one /metrics and /healthz on one admin port, fed
  by every gateway process over its own link (proxy.telemetry.gateway_links);
- N processes of proxy.server.worker_main, each binding every listener with SO_REUSEPORT.
  A listener on port 0 is bound by the first worker; the others get the port it chose.

A worker that exits is logged and started again after a backoff that doubles with each
exit in a row (0.5 s up to 30 s), and resets once a worker has run a minute. SIGTERM (or
SIGINT) stops the workers together, each draining its in-flight requests within the
shutdown bound; then the telemetry worker writes what they sent, then local models stop.

What does not become shared by running N processes, the parent refuses or warns about:
Responses state in memory would be per process (refused), and so is an in-memory affinity
cache (a warning: routing decisions are then sticky per process only), and so are rate-limit
buckets without shared_state (a warning: each worker allows each limit in full).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

from proxy.config.model import Config, ListenerType
from proxy.embedded.local_model import LocalModelServer
from proxy.gateway.inflight import CUT_GRACE_S
from proxy.server.ports import cannot_listen
from proxy.server.runner import FINAL_STEPS_S, Bound, start_local_models, until_signalled
from proxy.server.worker_main import WorkerReport, WorkerSpec, encode
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.sink import ProcessSink, TelemetryStartError
from proxy.upstream.targets import TargetError

log = logging.getLogger("plano.server")

START_TIMEOUT_S = 120.0  # a worker loads the embedded router: seconds on a busy machine
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 30.0
STABLE_AFTER_S = 60.0  # a worker that ran this long resets the backoff
POLL_S = 0.2


@dataclass(slots=True)
class _Worker:
    index: int
    process: subprocess.Popen
    conn: Connection
    started: float

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass(frozen=True, slots=True)
class RouterSummary:
    notes: list[str]


@dataclass(frozen=True, slots=True)
class OrchestratorSummary:
    """An agent listener's orchestrator as its first worker described it; `notes` are its
    router service's, the router line last, as the banner reads them."""

    ids: tuple[str, ...]
    default: str
    description: str
    notes: list[str]

    def describe(self) -> str:
        return self.description

    @property
    def service(self) -> RouterSummary:
        return RouterSummary(self.notes)


class WorkerPool:
    """The `plano up` parent with `--workers N`: the same face as ProxyServer for the CLI
    (bound, skipped, router, orchestrators, admin_url, start, stop, serve_until_signalled)."""

    def __init__(
        self,
        config: Config,
        workers: int,
        *,
        shutdown_timeout: float = 30.0,
        telemetry: WorkerSettings | None = None,
        access_log: bool = True,
        backoff_first_s: float = BACKOFF_FIRST_S,
    ):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.config = config
        self.workers = workers
        self.shutdown_timeout = shutdown_timeout
        self.telemetry = telemetry
        self.access_log = access_log
        self.backoff_first_s = backoff_first_s
        self.bound: list[Bound] = []
        self.skipped = [lst for lst in config.listeners if lst.type is ListenerType.PROMPT]
        self.router: RouterSummary | None = None
        self.orchestrators: dict[str, OrchestratorSummary] = {}
        self.admin_port: int | None = None
        self.sink: ProcessSink | None = None
        self._local_models: list[LocalModelServer] = []
        self._slots: dict[int, _Worker] = {}
        self._watchers: list[asyncio.Task] = []
        self._stopping = False
        self._socket_dir: str | None = None

    @property
    def pids(self) -> list[int]:
        return [worker.pid for _, worker in sorted(self._slots.items())]

    @property
    def admin_url(self) -> str | None:
        return self.telemetry.admin_url(self.admin_port) if self.telemetry else None

    # -- starting ------------------------------------------------------------------------

    async def start(self) -> None:
        """Raises TargetError (a worker's own start-up error, or a refused config) or
        OSError before serving; whatever was started is stopped again."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        _refuse_unshared(self.config)
        if problem := cannot_listen(self.config):
            raise TargetError(problem)
        for warning in _unshared_warnings(self.config, self.workers):
            log.warning("%s", warning)
        self.config = await start_local_models(self.config, self._local_models)
        if self.telemetry is not None:
            await self._start_telemetry()
        first = await self._spawn(0)
        report = await self._ready(first)
        self._adopt(report)
        rest = [await self._spawn(index) for index in range(1, self.workers)]
        await asyncio.gather(*(self._ready(worker) for worker in rest))
        for worker in (first, *rest):
            log.info("worker %d serving (pid %d)", worker.index, worker.pid)
        self._watchers = [asyncio.create_task(self._watch(index)) for index in range(self.workers)]
        if self.sink is not None:
            self._watchers.append(asyncio.create_task(self._watch_telemetry()))

    async def _start_telemetry(self) -> None:
        assert self.telemetry is not None
        # A private directory (0700) for the link socket; the key guards it as well.
        self._socket_dir = tempfile.mkdtemp(prefix="plano-")
        self.telemetry = dataclasses.replace(
            self.telemetry,
            gateway_socket=os.path.join(self._socket_dir, "telemetry.sock"),
            gateway_authkey=os.urandom(32),
        )
        self.sink = ProcessSink(self.telemetry)
        try:
            await asyncio.to_thread(self.sink.launch)
            self.admin_port = await asyncio.to_thread(self.sink.wait_ready)
        except TelemetryStartError as exc:
            self.sink = None
            raise TargetError(f"telemetry: {exc}") from None
        if self.admin_port is not None:
            # A telemetry worker started again must come back on the same admin port.
            self.sink.settings = dataclasses.replace(self.sink.settings, admin_port=self.admin_port)

    def _adopt(self, report: WorkerReport) -> None:
        """The first worker's bound ports become everyone's (port 0 resolved once)."""
        listeners = tuple(
            dataclasses.replace(lst, port=report.ports.get(lst.name, lst.port))
            for lst in self.config.listeners
        )
        self.config = dataclasses.replace(self.config, listeners=listeners)
        self.bound = [
            Bound(lst, lst.address, lst.port) for lst in listeners if lst.name in report.ports
        ]
        if report.router_notes is not None:
            self.router = RouterSummary(report.router_notes)
        self.orchestrators = {
            name: OrchestratorSummary(*value) for name, value in report.orchestrators.items()
        }

    async def _spawn(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "proxy.server.worker_main", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        spec = WorkerSpec(
            index=index,
            config=self.config,
            shutdown_timeout=self.shutdown_timeout,
            telemetry=self.telemetry,
            access_log=self.access_log,
        )
        conn.send_bytes(encode(spec))
        worker = _Worker(index, process, conn, time.monotonic())
        self._slots[index] = worker
        return worker

    async def _ready(self, worker: _Worker) -> WorkerReport:
        def wait() -> tuple:
            if not worker.conn.poll(START_TIMEOUT_S):
                return ("error", f"no answer within {START_TIMEOUT_S:.0f}s")
            try:
                return pickle.loads(worker.conn.recv_bytes())
            except (EOFError, OSError):
                try:
                    return ("error", f"exited at start (exit code {worker.process.wait(5)})")
                except subprocess.TimeoutExpired:  # raised, it would end the watcher
                    return ("error", "closed its pipe at start without exiting")

        kind, value = await asyncio.to_thread(wait)
        if kind != "ready":
            raise TargetError(f"worker {worker.index}: {value}")
        return value

    # -- supervising ---------------------------------------------------------------------

    async def _watch(self, index: int) -> None:
        failures = 0
        while not self._stopping:
            worker = self._slots[index]
            while worker.process.poll() is None and not self._stopping:
                await asyncio.sleep(POLL_S)
            if self._stopping:
                return
            code = worker.process.returncode
            ran = time.monotonic() - worker.started
            failures = 0 if ran >= STABLE_AFTER_S else failures + 1
            delay = min(self.backoff_first_s * 2 ** max(failures - 1, 0), BACKOFF_CAP_S)
            log.error(
                "worker %d (pid %d) exited (%s) after %.0fs; starting it again in %.1fs",
                index,
                worker.pid,
                _exit_reason(code),
                ran,
                delay,
            )
            worker.conn.close()
            await asyncio.sleep(delay)
            if self._stopping:
                return
            fresh = None
            try:
                fresh = await self._spawn(index)
                await self._ready(fresh)
            except (TargetError, OSError) as exc:
                log.error("worker %d could not start again: %s", index, exc)
                if fresh is not None:
                    # It may be hung rather than gone: it must not hold the slot, where
                    # the loop would wait for it forever. Its exit is the next one.
                    await asyncio.to_thread(_end, fresh)
                continue
            log.warning("worker %d serving again (pid %d)", index, fresh.pid)

    async def _watch_telemetry(self) -> None:
        """The workers' links reconnect by themselves once it runs again."""
        while not self._stopping and self.sink is not None:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.sink.ensure_running)

    # -- stopping ------------------------------------------------------------------------

    async def stop(self) -> None:
        """Every worker drains (within the shutdown bound) at once; then the telemetry
        worker writes what they sent; then local models stop. Bounded like ProxyServer's:
        the bound, the grace of the requests it ends, and FINAL_STEPS_S twice."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        loop = asyncio.get_running_loop()
        end = loop.time() + self.shutdown_timeout + CUT_GRACE_S + FINAL_STEPS_S
        workers = list(self._slots.values())
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                await asyncio.to_thread(worker.process.wait, max(end - loop.time(), 0.1))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time; killing it", worker.index)
                worker.process.kill()
                await asyncio.to_thread(worker.process.wait)
            worker.conn.close()
        self._slots.clear()
        end = max(end, loop.time()) + FINAL_STEPS_S
        if self.sink is not None:
            await asyncio.to_thread(self.sink.close, max(end - loop.time(), 1.0))
            self.sink = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
        await asyncio.gather(
            *(model.stop(max(end - loop.time(), 0.5)) for model in self._local_models)
        )
        self._local_models.clear()

    async def serve_until_signalled(self) -> None:
        await until_signalled(self.shutdown_timeout)
        await self.stop()


def _end(worker: _Worker) -> None:
    """Kill a worker that did not start, and close its pipe."""
    with contextlib.suppress(ProcessLookupError):
        worker.process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.process.wait(5)
    worker.conn.close()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _refuse_unshared(config: Config) -> None:
    if config.state_storage.type == "memory":
        raise TargetError(
            "state_storage type memory keeps Responses state in one process, and with "
            "--workers each request may reach another: use sqlite (the default) or postgres"
        )


def _unshared_warnings(config: Config, workers: int) -> list[str]:
    warnings = []
    if config.routes and config.routing.session_cache.type == "memory":
        warnings.append(
            "routing.session_cache is in memory: with --workers each process keeps its own, "
            "so a session is sticky within a process only (use a redis session cache)"
        )
    if config.ratelimits and config.shared_state is None:
        warnings.append(
            f"ratelimits without shared_state: each of the {workers} workers keeps its own "
            f"budget (up to {workers}× each limit); set shared_state"
        )
    return warnings
