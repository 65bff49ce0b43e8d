"""Plano in the background: the run directory, its pidfile, and checks on the process.

Shared by `plano up --detach`, `down`, `status` and `logs`. Standard library only, imported
when a command runs: `status` and `logs` must start fast.

The run directory is `$PLANO_HOME/run`, or `~/.plano/run`:
  plano.pid   the pid of the background process, written by `up --detach` right after spawning
  plano.json  pid, config, listener URLs, start time: written once the listeners answer /healthz
  plano.log   the process's stdout and stderr, appended to across runs
  plano.lock  flock'ed around check-then-write, so two commands never race on the files above
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from proxy.config.model import Config

READY_TIMEOUT_S = 15.0
# `plano down` waits the instance's own --shutdown-timeout and this much more before SIGKILL:
# the gateway ends what is still running at its bound, then writes the traces.
STOP_MARGIN_S = 10.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_S = 1.0
# On the command line of the background process; a pid whose command line lacks it was reused.
CHILD_FLAG = "--detached-child"


@dataclass(frozen=True, slots=True)
class RunFiles:
    dir: Path

    @property
    def pid(self) -> Path:
        return self.dir / "plano.pid"

    @property
    def meta(self) -> Path:
        return self.dir / "plano.json"

    @property
    def log(self) -> Path:
        return self.dir / "plano.log"

    @property
    def lock(self) -> Path:
        return self.dir / "plano.lock"


def run_files() -> RunFiles:
    from proxy.paths import plano_home

    base = plano_home()
    return RunFiles(base / "run")


# --- processes -------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (nobody may reap an orphan for us)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but another user's: is_plano() will tell it is not ours
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS), or it vanished just now: kill(0) is all we know
    # The state letter follows the command name, which may itself contain ") ".
    return stat[stat.rfind(")") + 2 :][:1] not in ("Z", "X")


def is_plano(pid: int) -> bool:
    """Whether this pid is still our background process, and not a reused pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # without /proc there is nothing to compare
    except OSError:
        return False
    return b"plano" in cmdline and CHILD_FLAG.encode() in cmdline


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def read_meta(files: RunFiles) -> dict | None:
    try:
        data = json.loads(files.meta.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def locked(files: RunFiles) -> Iterator[None]:
    import fcntl

    files.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _remove_files(files: RunFiles) -> None:
    files.pid.unlink(missing_ok=True)
    files.meta.unlink(missing_ok=True)


def remove_files_of(files: RunFiles, pid: int) -> None:
    """Remove pidfile and metadata if they still describe `pid` (not a newer instance)."""
    with locked(files):
        if read_pid(files.pid) in (pid, None):
            _remove_files(files)


def running_pid(files: RunFiles) -> tuple[int | None, int | None]:
    """(pid of the live background process, pid of a stale pidfile just removed)."""
    pid = read_pid(files.pid)
    if pid is not None and pid_alive(pid) and is_plano(pid):
        return pid, None
    if not files.pid.exists() and not files.meta.exists():
        return None, None
    with locked(files):  # re-read: an `up` may have written a fresh pidfile meanwhile
        return _running_pid_locked(files)


def _running_pid_locked(files: RunFiles) -> tuple[int | None, int | None]:
    pid = read_pid(files.pid)
    if pid is not None and pid_alive(pid) and is_plano(pid):
        return pid, None
    _remove_files(files)
    return None, pid


def release_own_files() -> None:
    """In the background process, on the way out: drop the pidfile if it is still ours."""
    files = run_files()
    if read_pid(files.pid) == os.getpid():
        _remove_files(files)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_timeout(meta: dict | None) -> float:
    """How long `plano down` waits before killing: the bound the instance was started with
    (in plano.json), and the margin its shutdown needs after it."""
    value = (meta or {}).get("shutdown_timeout")
    valid = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return (value if valid else DEFAULT_SHUTDOWN_TIMEOUT_S) + STOP_MARGIN_S


def stop(pid: int, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after `timeout`. False when it took the SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_gone(pid, 5.0)
    return False


# --- listeners -------------------------------------------------------------------------------


def listener_urls(config: Config) -> list[str]:
    """Where the served (model and agent) listeners answer; as `ProxyServer.bound` would
    report them."""
    from proxy.config.model import ListenerType

    urls = []
    for listener in config.listeners:
        if listener.type is ListenerType.PROMPT:
            continue  # prompt listeners are not served yet
        host = "127.0.0.1" if listener.address in ("0.0.0.0", "::") else listener.address
        host = f"[{host}]" if ":" in host else host
        urls.append(f"http://{host}:{listener.port}")
    return urls


def answers_healthz(url: str, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    # http.client, not urllib: urllib would send this through $HTTP_PROXY.
    from http.client import HTTPConnection, HTTPException
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, HTTPException):
        return False
    finally:
        conn.close()


# --- starting --------------------------------------------------------------------------------


def start_detached(
    config_path: Path, config: Config, *, shutdown_timeout: float, quiet: bool, workers: int = 1
) -> int:
    """Spawn `plano up` in a new session, wait until it answers, and report. The exit code."""
    from proxy.server.ports import cannot_listen

    files = run_files()
    urls = listener_urls(config)
    config_path = config_path.resolve()
    with locked(files):
        pid, stale = _running_pid_locked(files)
        if pid is not None:
            where = (read_meta(files) or {}).get("config", "unknown config")
            _error(
                f"plano is already running (pid {pid}, {where}).\n"
                "  stop it with `plano down`, or see it with `plano status`."
            )
            return 1
        if stale is not None:
            typer.echo(f"note: removed a stale pidfile (pid {stale} is not running)", err=True)
        if problem := cannot_listen(config):
            _error(problem)
            return 1
        log_fd = os.open(files.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            started = datetime.now(UTC)
            # Never secrets here: only the time and the config's path.
            os.write(
                log_fd,
                f"--- {started:%Y-%m-%d %H:%M:%S}Z plano up --detach {config_path}\n".encode(),
            )
            log_start = os.lseek(log_fd, 0, os.SEEK_END)
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "plano_cli",
                    "up",
                    CHILD_FLAG,
                    "--shutdown-timeout",
                    str(shutdown_timeout),
                    *(["--quiet"] if quiet else []),
                    *(["--workers", str(workers)] if workers > 1 else []),
                    str(config_path),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no SIGINT/SIGHUP from this terminal
                # Wide: rich would wrap log lines at 80 columns when not on a terminal.
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            )
        finally:
            os.close(log_fd)
        write_atomic(files.pid, f"{child.pid}\n")

    try:
        failure = _wait_ready(child, urls)
    except KeyboardInterrupt:
        stop(child.pid, 5.0)
        remove_files_of(files, child.pid)
        typer.echo("\ninterrupted: stopped the background process", err=True)
        return 130
    if failure:
        if child.poll() is None:
            stop(child.pid, 5.0)
        remove_files_of(files, child.pid)
        _error(failure)
        _print_log_since(files.log, log_start)
        return 1

    meta = {
        "pid": child.pid,
        "config": str(config_path),
        "listeners": urls,
        "started_at": started.isoformat(timespec="seconds"),
        "log": str(files.log),
        "shutdown_timeout": shutdown_timeout,
        "workers": workers,
    }
    write_atomic(files.meta, json.dumps(meta, indent=2) + "\n")
    more = f", {workers} workers" if workers > 1 else ""
    typer.echo(f"plano is running in the background (pid {child.pid}{more})")
    for url in urls:
        typer.echo(f"  listening on {url}")
    typer.echo(f"  config: {config_path}")
    typer.echo(f"  log:    {files.log}   (plano logs -f)")
    typer.echo("  stop it with `plano down`")
    # Detached on purpose: do not let Popen's finalizer warn about a child still running.
    child.returncode = 0
    return 0


def _wait_ready(child: subprocess.Popen, urls: list[str]) -> str | None:
    """None once every listener answers /healthz; else why not."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    # Nothing to poll without a served listener: alive after a moment is the best sign.
    settle = time.monotonic() + 1.0 if not urls else None
    while True:
        code = child.poll()
        if code is not None:
            return f"plano exited during start-up (exit code {code}); the end of its log:"
        if settle is not None:
            if time.monotonic() >= settle:
                return None
        elif all(answers_healthz(url, 0.5) for url in urls):
            return None
        if time.monotonic() >= deadline:
            return (
                f"plano did not answer /healthz within {READY_TIMEOUT_S:.0f}s; "
                "stopped it. The end of its log:"
            )
        time.sleep(0.1)


def _print_log_since(log: Path, offset: int, lines: int = 20) -> None:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return
    for line in text.splitlines()[-lines:]:
        typer.echo(f"  | {line}", err=True)


# --- reading the log -------------------------------------------------------------------------


def tail_lines(path: Path, count: int) -> tuple[list[str], int]:
    """The last `count` lines and the file size they end at; reads only the end of the file."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        if count <= 0:
            return [], end
        block, data = 8192, b""
        position = end
        # One more newline than lines wanted: the file's final newline ends the last line.
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:], end


# --- formatting ------------------------------------------------------------------------------


def uptime_seconds(meta: dict | None, pid_file: Path) -> float | None:
    started = (meta or {}).get("started_at")
    try:
        since = (
            datetime.fromisoformat(started).timestamp()
            if isinstance(started, str)
            else pid_file.stat().st_mtime
        )
    except (OSError, ValueError):
        return None
    return max(0.0, time.time() - since)


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _error(message: str) -> None:
    typer.echo(typer.style("error:", fg="red", bold=True) + " " + message, err=True)
