"""Start every listener of a config, and stop them without dropping in-flight requests."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from proxy.agents.orchestrator import Orchestrator
from proxy.config.model import Config, Listener, ListenerType
from proxy.config.model_index import ModelIndex
from proxy.embedded.local_model import LOCAL_PROVIDER, LocalModelServer
from proxy.gateway.inflight import CUT_GRACE_S
from proxy.routing.backends.ollama_router import ProgressCallback
from proxy.routing.pins import RedisPins
from proxy.routing.service import RoutingService
from proxy.routing.setup import RouterSetupError, build_orchestration, build_routing
from proxy.server.agent_app import build_agent_app
from proxy.server.model_app import GATEWAY, Observer, build_model_app
from proxy.server.protocol import ModelAppRunner
from proxy.state.shared import SharedStateError, SharedStores
from proxy.telemetry.hub import TelemetryHub
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.sink import HubSink, ProcessSink, TelemetryStartError
from proxy.upstream.retry import Backoff
from proxy.upstream.targets import TargetError, target_for

log = logging.getLogger("plano.server")

# After the shutdown bound: what the last steps (the telemetry worker writing the traces
# of finished requests, local models stopping) get at least. The whole shutdown takes at
# most the bound, the grace of the requests it ends, and this.
FINAL_STEPS_S = 3.0


@dataclass(slots=True)
class Bound:
    listener: Listener
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


class ProxyServer:
    """All listeners of one config. `port=0` in a listener binds an ephemeral port."""

    def __init__(
        self,
        config: Config,
        *,
        shutdown_timeout: float = 30.0,
        observers: list[Observer] | None = None,
        backoff: Backoff | None = None,
        router_progress: ProgressCallback | None = None,
        probe_ollama: bool = True,
        telemetry: WorkerSettings | None = None,
        reuse_port: bool = False,
    ):
        """`telemetry`: run the telemetry worker (traces, metrics, admin listener) with
        these settings; None records nothing, though traceparent still propagates. With
        `telemetry.gateway_socket` set, this is one of `plano up --workers N`'s processes:
        its records go to the worker the parent started, and `reuse_port` lets the N
        processes bind the same listener ports (SO_REUSEPORT)."""
        self.reuse_port = reuse_port
        self.config = config
        self.telemetry = telemetry
        self.sink: ProcessSink | None = None
        self.router_progress = router_progress
        self.probe_ollama = probe_ollama
        self.router: RoutingService | None = None
        # shared_state and the affinity cache's Redis: one pool each per process.
        self.shared = SharedStores(None, None)
        # Per agent listener, by name: who picks its agents (`plano up` shows it).
        self.orchestrators: dict[str, Orchestrator] = {}
        self.backoff = backoff
        self.shutdown_timeout = shutdown_timeout
        self.observers = observers or []
        self.bound: list[Bound] = []
        self._local_models: list[LocalModelServer] = []
        self.skipped: list[Listener] = []
        self._runners: list[web.AppRunner] = []
        self.admin_port: int | None = None
        self._deadline: float | None = None  # the loop's clock when in-flight requests end

    async def start(self) -> None:
        """Start local models, check every provider can be called, then bind listeners.

        Raises LocalModelError, TargetError or OSError (a port in use) before serving.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()  # whatever was started (a local model, a listener) stops again
            raise

    async def _start(self) -> None:
        self.config = await self._start_local_models(self.config)
        for provider in self.config.providers:
            if not provider.is_wildcard:
                target_for(provider)
        if self.telemetry is not None:
            # Spawning takes a moment: the worker starts while the router loads.
            shared = self.telemetry.gateway_socket is not None
            self.sink = HubSink(self.telemetry) if shared else ProcessSink(self.telemetry)
            try:
                await asyncio.to_thread(self.sink.launch)
            except TelemetryStartError as exc:
                self.sink = None
                raise TargetError(f"telemetry: {exc}") from None
        try:
            self.shared = await SharedStores.open(self.config, metrics=self.sink)
        except SharedStateError as exc:
            raise TargetError(str(exc)) from None
        if self.config.model_listener is not None:
            pins = None
            if self.shared.affinity is not None:
                pins = RedisPins(self.shared.affinity, self.config.routing.session_ttl_seconds)
            try:
                self.router = await build_routing(
                    self.config,
                    progress=self.router_progress,
                    probe_ollama=self.probe_ollama,
                    pins=pins,
                )
            except RouterSetupError as exc:
                raise TargetError(f"routing: {exc}") from None
        if self.sink is not None:
            try:
                self.admin_port = await asyncio.to_thread(self.sink.wait_ready)
            except TelemetryStartError as exc:
                self.sink = None
                raise TargetError(f"telemetry: {exc}") from None
        for listener in self.config.listeners:
            if listener.type is ListenerType.AGENT:
                await self._build_orchestrator(listener)
        for listener in self.config.listeners:
            if listener.type is ListenerType.PROMPT:
                self.skipped.append(listener)  # prompt listeners: not served yet
                continue
            hub = TelemetryHub(
                self.config.tracing,
                listener.name,
                self.sink,
                capture=self.telemetry is not None and self.telemetry.ships_bodies,
            )
            if listener.type is ListenerType.AGENT:
                app = build_agent_app(
                    self.config,
                    listener,
                    self.orchestrators[listener.name],
                    self.observers,
                    self.backoff,
                    hub,
                )
            else:
                app = build_model_app(
                    self.config,
                    listener,
                    self.observers,
                    self.backoff,
                    self.router,
                    hub,
                    # shared_state's SharedState once opened: budgets shared by instances.
                    shared_state=self.shared.state,
                )
            # Runs once the listener has stopped accepting and closed its idle connections.
            app.on_shutdown.append(self._drain)
            runner = ModelAppRunner(
                app,
                handle_signals=False,
                access_log=None,
                # Only a backstop: _drain has ended every request by the time aiohttp waits
                # (it waits this long, then cancels and waits as long again).
                shutdown_timeout=CUT_GRACE_S,
                # A client that goes away cancels its handler, and so its upstream call.
                handler_cancellation=True,
            )
            await runner.setup()  # opens the app's client session (on_startup)
            # Kept before binding: a port that is taken must still close that session.
            self._runners.append(runner)
            site = web.TCPSite(
                runner,
                listener.address,
                listener.port,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
            )
            await site.start()
            sockets = site._server.sockets if site._server else []
            port = sockets[0].getsockname()[1] if sockets else listener.port
            self.bound.append(Bound(listener, listener.address, port))

    async def _build_orchestrator(self, listener: Listener) -> None:
        service = None
        if len(listener.agents) > 1:  # one agent needs no one to choose it
            try:
                service = await build_orchestration(
                    self.config,
                    listener,
                    progress=self.router_progress,
                    probe_ollama=self.probe_ollama,
                )
            except RouterSetupError as exc:
                raise TargetError(f"agent listener {listener.name}: {exc}") from None
        self.orchestrators[listener.name] = Orchestrator(listener, service)

    @property
    def admin_url(self) -> str | None:
        return self.telemetry.admin_url(self.admin_port) if self.telemetry else None

    async def stop(self) -> None:
        """Stop accepting; let in-flight requests finish until the shutdown timeout; end
        those still running (a stream gets an error event in its client's format); then
        stop the telemetry worker and local models. Bounded: see FINAL_STEPS_S."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.shutdown_timeout
        # Together, so that every listener drains against the same deadline.
        await asyncio.gather(*(runner.cleanup() for runner in self._runners))
        self._runners.clear()
        # The last steps share what is left of the bound, and FINAL_STEPS_S after it.
        end = max(self._deadline, loop.time()) + FINAL_STEPS_S
        if self.sink is not None:
            # After the listeners: the requests they finished have their records queued.
            await asyncio.to_thread(self.sink.close, max(end - loop.time(), 1.0))
            self.sink = None
        if self.router is not None:
            await self.router.close()
            self.router = None
        for orchestrator in self.orchestrators.values():
            if orchestrator.service is not None:
                await orchestrator.service.close()
        self.orchestrators.clear()
        await self.shared.close()  # after the listeners: their requests may still use it
        # Models last: in-flight requests may still be using them while listeners drain.
        budget = max(end - loop.time(), 0.5)
        await asyncio.gather(*(model.stop(budget) for model in self._local_models))
        self._local_models.clear()

    async def _drain(self, app: web.Application) -> None:
        gateway = app.get(GATEWAY)
        if gateway is None or self._deadline is None:
            return
        ended = await gateway.inflight.drain(self._deadline)
        if ended:
            log.warning(
                "shutdown: %d request(s) still running after %gs were ended",
                ended,
                self.shutdown_timeout,
            )

    async def _start_local_models(self, config: Config) -> Config:
        return await start_local_models(config, self._local_models)

    async def serve_until_signalled(self) -> None:
        """Run until SIGINT or SIGTERM, then shut down gracefully."""
        await until_signalled(self.shutdown_timeout)
        await self.stop()


async def until_signalled(shutdown_timeout: float) -> None:
    """Wait for SIGINT or SIGTERM, and say that shutdown starts."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down: finishing in-flight requests (up to %.0fs)", shutdown_timeout)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def start_local_models(config: Config, started: list[LocalModelServer]) -> Config:
    """Start a llama.cpp server per `local` model without a base_url (each appended to
    `started`, to be stopped by the caller); the config with their URLs filled in."""
    wanted = sorted(
        {
            p.model_id
            for p in config.providers
            if p.provider == LOCAL_PROVIDER and not p.base_url and not p.is_wildcard
        }
    )
    urls = {}
    for model_id in wanted:
        log.info("starting local model local/%s (llama.cpp)", model_id)
        server = LocalModelServer(model_id)
        started.append(server)
        urls[model_id] = await server.start()
    if not urls:
        return config
    providers = tuple(
        dataclasses.replace(p, base_url=urls[p.model_id])
        if p.provider == LOCAL_PROVIDER and p.model_id in urls
        else p
        for p in config.providers
    )
    return dataclasses.replace(
        config, providers=providers, models=ModelIndex(providers, config.aliases)
    )
