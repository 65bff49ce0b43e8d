"""`plano up` as a real child process, for what only a process shows: its memory, how long
it takes to exit after SIGTERM, and what it logs."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Gateway:
    process: subprocess.Popen
    port: int
    home: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status_kb(self, field: str) -> int:
        """A line of /proc/<pid>/status in kB: VmRSS (resident now), VmHWM (its peak)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.process.pid}/status")

    def terminate(self, timeout_s: float = 60.0) -> float:
        """SIGTERM; the seconds until the process had exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout_s)
        return time.monotonic() - started


def answers(port: int) -> bool:
    """Whether a listener on this port answers /healthz."""
    conn = HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def plano_up(home: Path, config: str, *args: str) -> Iterator[Gateway]:
    """Write `config` (its listener's port is `{port}`) and serve it until the block ends."""
    port = free_port()
    path = home / "plano.yaml"
    path.write_text(config.replace("{port}", str(port)))
    log = home / "plano.log"
    env = {**os.environ, "PLANO_HOME": str(home)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "plano_cli", "up", str(path), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(process, port, home, log)
    try:
        deadline = time.monotonic() + 60
        while not answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("plano up did not start:\n" + log.read_text())
            time.sleep(0.1)
        yield gateway
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
