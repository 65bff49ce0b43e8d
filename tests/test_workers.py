"""`plano up --workers N`: real processes sharing one port, one trace store, one /metrics.

Each request below opens its own connection (a new SDK client), since SO_REUSEPORT spreads
connections, not requests, over the workers. Which worker answered is read from the access
log, whose lines each worker marks ("[w0] ", "[w1] ").
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import openai
import pytest
from fakes.providers import FakeProvider, openai_app, slow
from fakes.server_thread import ServerThread
from gateway_process import answers, free_port, plano_up
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT, signals")

USER = [{"role": "user", "content": "one two three four five six"}]
REQUESTS = 24


@pytest.fixture(scope="module")
def upstream():
    state = FakeProvider()
    with ServerThread(openai_app(state)) as server:
        yield state, server.base_url


def config_text(base_url: str, admin_port: int, extra: str = "") -> str:
    return (
        "version: v0.4.0\n"
        "listeners:\n  - {type: model, address: 127.0.0.1, port: {port}, timeout: 60s}\n"
        "model_providers:\n"
        f"  - {{model: openai/gpt-4o, base_url: '{base_url}/v1',"
        " access_key: $OPENAI_API_KEY, default: true}\n"
        f"admin: {{port: {admin_port}}}\n" + extra
    )


@pytest.fixture(autouse=True)
def provider_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-openai-0000")


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)


def metric_total(admin_url: str, name: str) -> float:
    text = urllib.request.urlopen(admin_url + "/metrics", timeout=5).read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def served_by(log: str) -> dict[str, int]:
    """Access lines per worker mark."""
    counts: dict[str, int] = {}
    for mark in re.findall(r"(\[w\d+\]) openai_chat /v1/chat/completions", log):
        counts[mark] = counts.get(mark, 0) + 1
    return counts


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def worker_pids(log_path: Path) -> dict[int, int]:
    """Worker index -> pid, the latest the log names."""
    pids = {}
    for index, pid in re.findall(
        r"worker (\d+) serving(?: again)? \(pid (\d+)\)", log_path.read_text()
    ):
        pids[int(index)] = int(pid)
    return pids


@pytest.mark.slow
def test_two_workers_share_the_port_one_store_and_one_metrics(upstream, tmp_path):
    state, base_url = upstream
    state.clear()
    admin_port = free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    with plano_up(tmp_path, config_text(base_url, admin_port), "--workers", "2") as gateway:
        assert wait_for(lambda: len(worker_pids(gateway.log)) == 2), gateway.log.read_text()
        for n in range(REQUESTS):
            answer = client(gateway.url).chat.completions.create(
                model="gpt-4o", messages=USER, extra_headers={"x-request-id": f"req-{n}"}
            )
            assert answer.choices[0].message.content == "echo: one two three four five six"
        # Metrics are counted as records arrive (every 50 ms from each worker).
        assert wait_for(lambda: metric_total(admin, "plano_requests_total") == REQUESTS)
        health = json.loads(urllib.request.urlopen(admin + "/healthz", timeout=5).read())
        assert health["status"] == "ok"
    log = gateway.log.read_text()

    assert gateway.process.returncode == 0, log
    counts = served_by(log)
    assert set(counts) == {"[w0]", "[w1]"}, log  # both workers took connections
    assert sum(counts.values()) == REQUESTS
    with sqlite3.connect(tmp_path / "traces.db") as db:
        ids = {row[0] for row in db.execute("SELECT request_id FROM requests")}
    assert ids == {f"req-{n}" for n in range(REQUESTS)}
    assert "sk-fake-openai-0000" not in log


@pytest.mark.slow
def test_sigterm_lets_in_flight_streams_on_every_worker_finish(upstream, tmp_path):
    state, base_url = upstream
    state.clear()
    streams = 12
    state.push(*[slow(0.2, 0.3)] * streams)  # six words: about two seconds a stream
    results: dict[int, str | BaseException] = {}
    started = threading.Barrier(streams + 1)

    def read(n: int, url: str) -> None:
        try:
            stream = client(url).chat.completions.create(
                model="gpt-4o",
                messages=USER,
                stream=True,
                extra_headers={"x-request-id": f"stream-{n}"},
            )
            started.wait(20)
            results[n] = "".join(
                chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
            )
        except BaseException as exc:  # what the test asserts on
            results[n] = exc

    config = config_text(base_url, free_port())
    with plano_up(tmp_path, config, "--workers", "2", "--shutdown-timeout", "20") as gateway:
        assert wait_for(lambda: len(worker_pids(gateway.log)) == 2), gateway.log.read_text()
        readers = [threading.Thread(target=read, args=(n, gateway.url)) for n in range(streams)]
        for reader in readers:
            reader.start()
        started.wait(20)  # every stream has its headers: it is in flight on some worker
        took = gateway.terminate()
        for reader in readers:
            reader.join(10)
    log = gateway.log.read_text()

    assert gateway.process.returncode == 0, log
    assert took < 20, log
    assert results == dict.fromkeys(range(streams), "echo: one two three four five six"), log
    assert set(served_by(log)) == {"[w0]", "[w1]"}, log
    with sqlite3.connect(tmp_path / "traces.db") as db:
        rows = dict(db.execute("SELECT request_id, status FROM requests WHERE error IS NULL"))
    assert rows == {f"stream-{n}": 200 for n in range(streams)}
    assert not list(tmp_path.glob("*.sock"))


@pytest.mark.slow
def test_a_worker_that_dies_is_restarted_and_logged(upstream, tmp_path):
    state, base_url = upstream
    state.clear()
    with plano_up(tmp_path, config_text(base_url, free_port()), "--workers", "2") as gateway:
        assert wait_for(lambda: len(worker_pids(gateway.log)) == 2), gateway.log.read_text()
        victim = worker_pids(gateway.log)[1]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: worker_pids(gateway.log)[1] != victim), gateway.log.read_text()
        for _ in range(6):  # the port is served throughout
            client(gateway.url).chat.completions.create(model="gpt-4o", messages=USER)
        fresh = worker_pids(gateway.log)[1]
        assert Path(f"/proc/{fresh}").exists()
    log = gateway.log.read_text()
    assert f"worker 1 (pid {victim}) exited (killed by SIGKILL)" in log
    assert "starting it again in 0.5s" in log


def test_responses_state_in_memory_is_refused_with_workers(upstream, tmp_path):
    _, base_url = upstream
    path = tmp_path / "plano.yaml"
    path.write_text(
        config_text(base_url, free_port(), "state_storage: {type: memory}\n").replace(
            "{port}", str(free_port())
        )
    )
    env = {**os.environ, "PLANO_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "plano_cli", "up", str(path), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "state_storage type memory keeps Responses state in one process" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_responses_conversation_continues_on_any_worker(upstream, tmp_path):
    """SQLite (the default store) is shared by the workers' processes."""
    state, base_url = upstream
    state.clear()
    with plano_up(tmp_path, config_text(base_url, free_port()), "--workers", "2") as gateway:
        assert wait_for(lambda: len(worker_pids(gateway.log)) == 2), gateway.log.read_text()
        previous = None
        for turn in range(12):  # each turn on a new connection: both workers see the chain
            response = client(gateway.url).responses.create(
                model="gpt-4o", input=f"turn {turn}", previous_response_id=previous
            )
            previous = response.id
        sent = state.last.body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [f"turn {n}" for n in range(12)]
    assert set(served_by_responses(gateway.log.read_text())) == {"[w0]", "[w1]"}


def served_by_responses(log: str) -> set[str]:
    return set(re.findall(r"(\[w\d+\]) openai_responses /v1/responses", log))


@pytest.mark.slow
def test_background_workers_status_and_down(upstream, tmp_path):
    _, base_url = upstream
    port = free_port()
    path = tmp_path / "plano.yaml"
    path.write_text(config_text(base_url, free_port()).replace("{port}", str(port)))
    env = {**os.environ, "PLANO_HOME": str(tmp_path)}

    def plano(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "plano_cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )

    started = plano("up", "-d", str(path), "--workers", "2")
    assert started.returncode == 0, started.stderr
    assert "2 workers" in started.stdout
    log = tmp_path / "run" / "plano.log"
    try:
        assert wait_for(lambda: len(worker_pids(log)) == 2), log.read_text()
        pids = worker_pids(log).values()
        status = plano("status", "--json")
        assert status.returncode == 0, status.stdout
        assert json.loads(status.stdout)["workers"] == 2
        assert answers(port)
    finally:
        stopped = plano("down")
    assert stopped.returncode == 0
    assert "plano stopped" in stopped.stdout
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    assert not answers(port)
