"""Start every listener of a config, and stop them without dropping in-flight requests."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from proxy.config.model import Config, Listener, ListenerType
from proxy.server.model_app import Observer, build_model_app
from proxy.upstream.retry import Backoff

log = logging.getLogger("plano.server")


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
    ):
        self.config = config
        self.backoff = backoff
        self.shutdown_timeout = shutdown_timeout
        self.observers = observers or []
        self.bound: list[Bound] = []
        self.skipped: list[Listener] = []
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        for listener in self.config.listeners:
            if listener.type is not ListenerType.MODEL:
                self.skipped.append(listener)  # prompt and agent listeners: not served yet
                continue
            app = build_model_app(self.config, listener, self.observers, self.backoff)
            runner = web.AppRunner(
                app,
                handle_signals=False,
                access_log=None,
                # Finish in-flight requests and streams on shutdown, up to this bound.
                shutdown_timeout=self.shutdown_timeout,
                # A client that goes away cancels its handler, and so its upstream call.
                handler_cancellation=True,
            )
            await runner.setup()
            site = web.TCPSite(runner, listener.address, listener.port, reuse_address=True)
            await site.start()
            self._runners.append(runner)
            sockets = site._server.sockets if site._server else []
            port = sockets[0].getsockname()[1] if sockets else listener.port
            self.bound.append(Bound(listener, listener.address, port))

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    async def serve_until_signalled(self) -> None:
        """Run until SIGINT or SIGTERM, then shut down gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
            log.info(
                "shutting down: finishing in-flight requests (up to %.0fs)", self.shutdown_timeout
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.stop()
