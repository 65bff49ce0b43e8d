"""Real servers the tests start themselves: Redis (and PostgreSQL), from Debian's packages.

Each runs on a free loopback port in a temporary directory, never the machine's own
service, and is stopped with the test. A missing server binary fails the test with a
message saying what to install (.ci/run installs it): a skipped test would hide that the
shared-state code went untested.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# --- Redis ----------------------------------------------------------------------------------

REDIS_SERVER = "redis-server"
START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_binary() -> str:
    path = shutil.which(REDIS_SERVER)
    if path is None:
        pytest.fail(
            "redis-server is not installed: the shared-state tests need a real Redis. "
            "Install it (Debian: apt-get install redis-server; .ci/run does this).",
            pytrace=False,
        )
    return path


class RedisServer:
    """A redis-server on 127.0.0.1:<port>, no persistence, that can be killed and started
    again on the same port (what a crashed and restarted Redis looks like to clients)."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.binary = _redis_binary()
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = (self.workdir / "redis.log").open("ab")
        # No persistence (--save "", no AOF): a restart comes back empty, as a fresh one.
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.workdir),
            "save": "",
            "appendonly": "no",
            "protected-mode": "no",
            "daemonize": "no",
        }
        argv = [self.binary]
        for name, value in options.items():
            argv += [f"--{name}", value]
        self.process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer in {START_TIMEOUT_S}s: {self.log_tail()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command over a plain socket (no client library): its raw RESP reply."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"".join(parts))
            return sock.recv(65536)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-run, as in a crash, with no goodbye to clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        """Start again on the same port (empty: nothing was persisted)."""
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def log_tail(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server for one test."""
    with tempfile.TemporaryDirectory(prefix="plano-redis-") as workdir:
        server = RedisServer(Path(workdir)).start()
        try:
            yield server
        finally:
            server.stop()
