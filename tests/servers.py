"""Real servers the tests start themselves: Redis and PostgreSQL, from Debian's packages.

Each runs on a free loopback port in a temporary directory, never the machine's own
service, and is stopped with the test. A missing server binary fails the test with a
message saying what to install (.ci/run installs it): a skipped test would hide that the
shared-state code went untested.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
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


# --- PostgreSQL -----------------------------------------------------------------------------

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"  # Debian's layout: not on PATH
PG_USER = "plano"


def _pg_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (initdb, pg_ctl, postgres)."""
    found = sorted(
        (Path(p) for p in glob.glob(PG_BIN_GLOB) if (Path(p) / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).parent
    pytest.fail(
        "PostgreSQL is not installed: the Responses-state tests need a real server. "
        "Install it (Debian: apt-get install postgresql; .ci/run does this).",
        pytrace=False,
    )


class PostgresServer:
    """A PostgreSQL cluster of its own in a temporary directory, on 127.0.0.1:<port>, with
    password authentication (user `plano`). initdb refuses to run as root, so as root
    every command runs as the `postgres` user, which owns the directory."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.bin = _pg_bin_dir()
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = port or free_port()
        self.password = "pgpw-" + secrets.token_hex(8)
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            self._as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(workdir, "postgres", "postgres")
        workdir.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._as_owner, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} failed: {result.stderr[-2000:]}{self.log_tail()}"
            )

    def init(self) -> PostgresServer:
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_owner:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            PG_USER,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-locale",
            "-E",
            "UTF8",
            "--no-sync",
        )
        pwfile.unlink()
        return self

    def start(self) -> PostgresServer:
        # fsync off: the tests' data need not survive a power cut, and it is much faster.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.workdir} -c fsync=off"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.workdir / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (clients disconnected, clean) or `immediate` (as in a
        crash: every backend dropped at once)."""
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def crash(self) -> None:
        self.stop("immediate")

    def restart(self) -> None:
        """Up again on the same port, with its data (as a database that came back)."""
        self.stop("immediate")
        self.start()

    def accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_tail(self) -> str:
        path = self.workdir / "postgres.log"
        return "\n" + path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL for the block, removed afterwards (tests/test_*_postgres.py)."""
    workdir = Path(tempfile.mkdtemp(prefix="plano-pg-"))
    server = PostgresServer(workdir)
    try:
        yield server.init().start()
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL for one test."""
    with running_postgres() as server:
        yield server
