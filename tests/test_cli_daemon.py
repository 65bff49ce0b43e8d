"""`plano up --detach`, `down`, `status` and `logs`: real processes, a real run directory."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gateway_process import answers, free_port

SECRET = "sk-plano-test-0123456789abcdef"
PLANO = [sys.executable, "-m", "plano_cli"]
# Stands in for the background process: its command line carries the marks `is_plano` looks for.
FAKE_CHILD = [
    sys.executable,
    "-c",
    "import signal, sys, time\n"
    "if sys.argv[1] == 'stubborn': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n",
]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


class Home:
    """PLANO_HOME in tmp_path, and every process started under it, for the finalizer."""

    def __init__(self, root: Path):
        self.root = root
        self.run_dir = root / "run"
        self.pid_file = self.run_dir / "plano.pid"
        self.meta_file = self.run_dir / "plano.json"
        self.log_file = self.run_dir / "plano.log"
        self.pids: list[int] = []
        self.env = {**os.environ, "PLANO_HOME": str(root)}

    def plano(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [*PLANO, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if self.pid_file.exists():
            self.pids.append(int(self.pid_file.read_text()))
        return result

    def config(self, port: int, model: str = "openai/gpt-4o", name: str = "plano.yaml") -> Path:
        path = self.root / name
        path.write_text(
            "version: v0.4.0\n"
            f"listeners:\n  - {{type: model, address: 127.0.0.1, port: {port}}}\n"
            f"model_providers:\n  - model: {model}\n"
            f"    base_url: http://127.0.0.1:9/v1\n    access_key: {SECRET}\n"
        )
        return path

    def fake_child(self, mode: str = "plain") -> subprocess.Popen:
        proc = subprocess.Popen(
            [*FAKE_CHILD, mode, "plano", "--detached-child"], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline() == "ready\n"  # its SIGTERM handler is in place
        self.pids.append(proc.pid)
        return proc


@pytest.fixture(autouse=True)
def home(tmp_path):
    home = Home(tmp_path)
    yield home
    home.plano("down", "--timeout", "5")
    for pid in home.pids:  # whatever `down` did not stop: never leak a process
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def running(home):
    """A proxy started with `up --detach`: (port, the `up` result)."""
    port = free_port()
    result = home.plano("up", "--detach", str(home.config(port)))
    assert result.returncode == 0, result.stdout + result.stderr
    return port, result


def test_up_detach_serves_in_the_background(home, running):
    port, result = running
    assert answers(port)
    pid = int(home.pid_file.read_text())
    assert alive(pid)
    assert f"(pid {pid})" in result.stdout
    assert f"listening on http://127.0.0.1:{port}" in result.stdout
    assert str(home.log_file) in result.stdout
    assert "warning: access_key of openai/gpt-4o is written in the file" in result.stderr
    meta = json.loads(home.meta_file.read_text())
    assert meta["pid"] == pid
    assert meta["config"] == str(home.root / "plano.yaml")
    assert meta["listeners"] == [f"http://127.0.0.1:{port}"]
    assert meta["started_at"]
    log = home.log_file.read_text()
    assert SECRET not in log + home.meta_file.read_text() + result.stdout + result.stderr


def test_the_log_gets_a_plain_summary_not_the_terminal_panel(home, running):
    port, _ = running
    deadline = time.monotonic() + 10
    while "stops it" not in home.log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the child writes it once its listeners are up
    log = home.log_file.read_text()
    assert "plano up: serving\n" in log
    assert f"  model listener  http://127.0.0.1:{port}  (model_listener)\n" in log
    assert "  `plano down` stops it\n" in log
    assert "Ctrl-C" not in log
    assert not set(log) & set("╭╮╰╯│─")  # no box
    summary = log.split("plano up: serving\n", 1)[1].split("  `plano down`", 1)[0]
    assert all(line == line.rstrip() for line in summary.splitlines())  # no padding to 200


def test_status_reports_a_running_proxy(home, running):
    port, _ = running
    pid = int(home.pid_file.read_text())
    text = home.plano("status")
    assert text.returncode == 0, text.stdout + text.stderr
    assert f"plano is running (pid {pid}, up " in text.stdout
    assert f"http://127.0.0.1:{port}  healthy" in text.stdout
    assert str(home.root / "plano.yaml") in text.stdout

    report = home.plano("status", "--json")
    assert report.returncode == 0
    data = json.loads(report.stdout)
    assert (data["running"], data["healthy"], data["pid"]) == (True, True, pid)
    assert data["listeners"] == [{"url": f"http://127.0.0.1:{port}", "healthy": True}]
    assert data["uptime_s"] >= 0
    assert data["log"] == str(home.log_file)


def test_a_second_instance_is_refused(home, running):
    pid = home.pid_file.read_text()
    again = home.plano("up", "--detach", str(home.config(free_port(), name="other.yaml")))
    assert again.returncode == 1
    assert f"plano is already running (pid {pid.strip()}" in again.stderr
    assert "plano down" in again.stderr
    assert home.pid_file.read_text() == pid


def test_logs_prints_the_last_lines(home, running):
    result = home.plano("logs", "-n", "5")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert lines == home.log_file.read_text().splitlines()[-5:]


def test_down_stops_it_gracefully_and_is_idempotent(home, running):
    port, _ = running
    pid = int(home.pid_file.read_text())
    result = home.plano("down")
    assert result.returncode == 0, result.stderr
    assert f"stopping plano (pid {pid})" in result.stdout
    assert "plano stopped" in result.stdout
    assert not alive(pid)
    assert not answers(port)
    assert not home.pid_file.exists()
    assert not home.meta_file.exists()
    assert "shutting down: finishing in-flight requests" in home.log_file.read_text()

    again = home.plano("down")
    assert (again.returncode, again.stdout) == (0, "plano is not running\n")
    status = home.plano("status")
    assert (status.returncode, status.stdout) == (1, "plano is not running\n")
    assert json.loads(home.plano("status", "--json").stdout) == {"running": False}


def test_a_stale_pidfile_is_cleaned_up(home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    home.run_dir.mkdir()
    home.pid_file.write_text(f"{dead.pid}\n")
    home.meta_file.write_text('{"pid": 1}')
    port = free_port()
    result = home.plano("up", "--detach", str(home.config(port)))
    assert result.returncode == 0, result.stderr
    assert f"removed a stale pidfile (pid {dead.pid} is not running)" in result.stderr
    assert int(home.pid_file.read_text()) != dead.pid
    assert answers(port)


def test_a_reused_pid_is_not_taken_for_plano(home):
    # The pid is alive but runs something else: never report it, never signal it.
    other = subprocess.Popen(["sleep", "60"])
    home.pids.append(other.pid)
    home.run_dir.mkdir()
    home.pid_file.write_text(f"{other.pid}\n")
    assert home.plano("status").returncode == 1
    assert not home.pid_file.exists()
    home.pid_file.write_text(f"{other.pid}\n")
    assert home.plano("down").stdout == "plano is not running\n"
    assert other.poll() is None
    other.kill()
    other.wait()


def test_an_invalid_config_exits_1_before_spawning_anything(home):
    path = home.root / "bad.yaml"
    path.write_text("version: v0.4.0\nlisteners: [{type: model}]\nmodel_providers:\n  - model: x\n")
    result = home.plano("up", "--detach", str(path))
    assert result.returncode == 1
    assert "error: model 'x' must name its provider" in result.stderr
    assert "plano up: fix the errors above, then run it again." in result.stderr
    assert not home.run_dir.exists()


def test_a_busy_port_exits_1_before_spawning(home):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = home.plano("up", "--detach", str(home.config(port)))
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not home.pid_file.exists()
    assert not home.log_file.exists()


def test_a_crash_during_start_up_shows_the_log(home):
    # A valid config whose local model does not exist: the background process exits 1.
    path = home.root / "local.yaml"
    path.write_text(
        "version: v0.4.0\n"
        f"listeners:\n  - {{type: model, address: 127.0.0.1, port: {free_port()}}}\n"
        "model_providers:\n  - model: local/no-such-model.gguf\n"
    )
    result = home.plano("up", "--detach", str(path))
    assert result.returncode == 1
    assert "plano exited during start-up (exit code 1); the end of its log:" in result.stderr
    assert "  | error: " in result.stderr
    assert "no-such-model.gguf" in result.stderr
    assert not home.pid_file.exists()
    assert not home.meta_file.exists()


def test_down_kills_what_ignores_sigterm(home):
    stubborn = home.fake_child("stubborn")
    home.run_dir.mkdir()
    home.pid_file.write_text(f"{stubborn.pid}\n")
    result = home.plano("down", "--timeout", "0.5")
    assert result.returncode == 0
    assert "warning: plano did not stop within 0.5s; killed it" in result.stderr
    assert stubborn.wait(5) == -signal.SIGKILL
    assert not home.pid_file.exists()


def test_status_of_a_process_that_does_not_answer_exits_3(home):
    fake = home.fake_child()
    home.run_dir.mkdir()
    home.pid_file.write_text(f"{fake.pid}\n")
    url = f"http://127.0.0.1:{free_port()}"
    home.meta_file.write_text(json.dumps({"pid": fake.pid, "listeners": [url], "config": "c"}))
    result = home.plano("status")
    assert result.returncode == 3
    assert f"plano is running, unhealthy (pid {fake.pid}" in result.stdout
    assert f"{url}  not answering /healthz" in result.stdout
    data = json.loads(home.plano("status", "--json").stdout)
    assert (data["running"], data["healthy"]) == (True, False)
    fake.kill()
    fake.wait()


def test_logs_without_a_log_exits_1(home):
    result = home.plano("logs")
    assert result.returncode == 1
    assert f"no log yet: {home.log_file} does not exist" in result.stderr


def test_logs_follow_survives_truncation_and_rotation(home):
    home.run_dir.mkdir()
    home.log_file.write_text("old 1\nold 2\n")
    follower = subprocess.Popen(
        [*PLANO, "logs", "-f", "-n", "1"], env=home.env, stdout=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout], daemon=True).start()

    def next_line() -> str:
        return lines.get(timeout=10)

    try:
        assert next_line() == "old 2\n"
        with home.log_file.open("a") as log:
            log.write("appended\n")
        assert next_line() == "appended\n"
        home.log_file.write_text("")  # truncated in place, as copytruncate does
        time.sleep(0.5)
        home.log_file.write_text("after truncation\n")
        assert next_line() == "after truncation\n"
        home.log_file.rename(home.run_dir / "plano.log.1")
        home.log_file.write_text("rotated\n")
        assert next_line() == "rotated\n"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_an_agent_listener_is_served_and_watched_in_the_background(home):
    model_port, agent_port = free_port(), free_port()
    path = home.root / "agents.yaml"
    path.write_text(
        "version: v0.3.0\n"
        "agents: [{id: helper, url: 'http://127.0.0.1:9'}]\n"
        f"model_providers:\n  - {{model: openai/gpt-4o, base_url: 'http://127.0.0.1:9/v1', "
        f"access_key: {SECRET}}}\n"
        "listeners:\n"
        f"  - {{type: model, address: 127.0.0.1, port: {model_port}}}\n"
        f"  - type: agent\n    name: desk\n    address: 127.0.0.1\n    port: {agent_port}\n"
        "    agents: [{id: helper, description: answers everything}]\n"
    )
    result = home.plano("up", "--detach", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert answers(agent_port)
    meta = json.loads(home.meta_file.read_text())
    assert meta["listeners"] == [
        f"http://127.0.0.1:{model_port}",
        f"http://127.0.0.1:{agent_port}",
    ]
    status = json.loads(home.plano("status", "--json").stdout)
    assert [entry["healthy"] for entry in status["listeners"]] == [True, True]
