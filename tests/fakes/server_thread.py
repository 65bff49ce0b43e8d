"""Serve an aiohttp app from a private event loop in a background thread.

Tests drive the fakes with synchronous SDK clients (and pytest-asyncio tests own their own
loop), so the server must never share the caller's loop: a sync client blocking the test's
loop would otherwise deadlock against a server waiting on that same loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from types import TracebackType

from aiohttp import web

_START_TIMEOUT_S = 10.0
# The stand-ins' aiohttp server log, apart from aiohttp.server (the gateway's).
STAND_IN_LOG = logging.getLogger("tests.stand_in.server")
_STOP_TIMEOUT_S = 10.0


class ServerThread:
    """Run `app` on 127.0.0.1 with an ephemeral port until `stop()`.

    Usable as a context manager::

        with ServerThread(openai_app(state)) as server:
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k")
    """

    def __init__(
        self, app: web.Application, *, host: str = "127.0.0.1", shutdown_timeout: float = 1.0
    ) -> None:
        self.app = app
        self.host = host
        # Short: a scripted hang() must not hold stop() for aiohttp's default 60 s.
        self._shutdown_timeout = shutdown_timeout
        self.port: int = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopped = False

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("ServerThread is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        if self._thread is not None:
            raise RuntimeError("ServerThread can only be started once")
        # Daemon: a test that forgets stop() must not keep the interpreter alive.
        self._thread = threading.Thread(target=self._run, name="fake-provider", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("fake provider server did not start in time")
        if self._error is not None:
            raise RuntimeError("fake provider server failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._stopped or self._thread is None:
            return
        self._stopped = True
        loop, runner = self._loop, self._runner
        if loop is not None and runner is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(runner.cleanup(), loop)
            try:
                future.result(_STOP_TIMEOUT_S)
            finally:
                loop.call_soon_threadsafe(loop.stop)
        self._thread.join(_STOP_TIMEOUT_S)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._setup())
            except BaseException as exc:
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            self._drain(loop)
            loop.close()

    async def _setup(self) -> None:
        # handler_cancellation: when a client gives up (timeout), its handler is cancelled
        # instead of sleeping on, just like a real server dropping the work.
        runner = web.AppRunner(
            self.app,
            access_log=None,
            # Its own logger: what a stand-in logs (an agent refusing the many headers a
            # client sent through Plano, say) is not the gateway's log.
            logger=STAND_IN_LOG,
            handler_cancellation=True,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self.port = runner.addresses[0][1]

    @staticmethod
    def _drain(loop: asyncio.AbstractEventLoop) -> None:
        # Cancel leftovers so closing the loop does not warn about pending tasks.
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
