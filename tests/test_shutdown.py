"""Shutdown keeps its bound, and ends what is still running in the client's own format.

Before: with `--shutdown-timeout 3` a stream that never ends was cut 6 s after SIGTERM
(aiohttp waits its timeout, cancels, and waits it again), the client got a chunked body
with no end and no error event, and the access log and trace said 499, client disconnected.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import anthropic
import openai
import pytest
from fakes.providers import FakeProvider, anthropic_app, endless_stream, hang, openai_app
from fakes.server_thread import ServerThread
from gateway_process import free_port, plano_up
from proxy_harness import ProxyThread, config_from_yaml

from plano_cli import daemon
from proxy.gateway.exchange import Outcome
from proxy.gateway.inflight import SHUTDOWN_MESSAGE

BOUND_S = 3.0
MARGIN_S = 5.0
USER = [{"role": "user", "content": "tell me everything"}]


@pytest.fixture(scope="module")
def upstreams():
    oa_state, an_state = FakeProvider(), FakeProvider()
    with ServerThread(openai_app(oa_state)) as oa, ServerThread(anthropic_app(an_state)) as an:
        yield {"openai": (oa_state, oa.base_url), "anthropic": (an_state, an.base_url)}


def config_text(upstreams) -> str:
    return (
        "version: v0.4.0\n"
        "listeners:\n  - {type: model, address: 127.0.0.1, port: {port}, timeout: 60s}\n"
        "model_providers:\n"
        f"  - {{model: openai/gpt-4o, base_url: '{upstreams['openai'][1]}/v1',"
        " access_key: sk-fake-openai-0000, default: true}\n"
        f"  - {{model: anthropic/claude-sonnet-4-6, base_url: '{upstreams['anthropic'][1]}',"
        " access_key: sk-fake-anthropic-0000}\n"
    )


class Reader(threading.Thread):
    """Reads one stream to its end in the background; keeps the last event or the error."""

    def __init__(self, open_stream):
        super().__init__(daemon=True)
        self.open_stream = open_stream
        self.started = threading.Event()
        self.events: list = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.open_stream() as stream:
                for event in stream:
                    self.events.append(event)
                    self.started.set()
        except Exception as exc:  # what the test asserts on
            self.error = exc
        finally:
            self.started.set()


def readers(url: str) -> dict[str, Reader]:
    """Passed through, OpenAI and Anthropic; translated to Anthropic and to Responses."""
    oa = openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0)

    def opener(call, request_id: str, **args):
        return lambda: call(**args, extra_headers={"x-request-id": request_id})

    chat = {"messages": USER, "stream": True}
    messages = {"messages": USER, "max_tokens": 100}
    return {
        "openai": Reader(opener(oa.chat.completions.create, "cut-openai", model="gpt-4o", **chat)),
        "anthropic": Reader(
            opener(an.messages.stream, "cut-anthropic", model="claude-sonnet-4-6", **messages)
        ),
        "anthropic-translated": Reader(
            opener(an.messages.stream, "cut-translated", model="gpt-4o", **messages)
        ),
        "responses": Reader(
            opener(
                oa.responses.create,
                "cut-responses",
                model="claude-sonnet-4-6",
                input="tell me everything",
                stream=True,
            )
        ),
    }


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_sigterm_ends_endless_streams_within_the_bound(upstreams, tmp_path):
    for state, _ in upstreams.values():
        state.clear()
    with plano_up(tmp_path, config_text(upstreams), "--shutdown-timeout", str(BOUND_S)) as gateway:
        oa = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
        done = oa.chat.completions.create(
            model="gpt-4o", messages=USER, extra_headers={"x-request-id": "finished"}
        )
        assert done.choices[0].message.content == "echo: tell me everything"
        for state, _ in upstreams.values():
            state.push(*[endless_stream(0.05)] * 2)
        streams = readers(gateway.url)
        for reader in streams.values():
            reader.start()
        for name, reader in streams.items():
            assert reader.started.wait(20), name
            assert reader.error is None, (name, reader.error)
        took = gateway.terminate()
        for reader in streams.values():
            reader.join(10)
    log = gateway.log.read_text()

    assert took < BOUND_S + MARGIN_S, f"exited {took:.1f}s after SIGTERM\n{log}"
    assert gateway.process.returncode == 0
    # An error event in each client's own format, which its SDK raises as an API error
    # (not a broken connection); a Responses stream ends with response.failed.
    for name in ("openai", "anthropic", "anthropic-translated"):
        error = streams[name].error
        assert isinstance(error, openai.APIError | anthropic.APIError), (name, error)
        assert not isinstance(error, openai.APIConnectionError | anthropic.APIConnectionError)
        assert SHUTDOWN_MESSAGE in str(error), (name, error)
    assert streams["responses"].error is None
    last = streams["responses"].events[-1]
    assert (last.type, last.response.error.message) == ("response.failed", SHUTDOWN_MESSAGE)

    assert log.count("200 outcome=shutdown") == 4, log
    assert "499" not in log
    assert "shutdown: 4 request(s) still running after 3s were ended" in log

    # The traces: the finished request's, and each cut stream's, saying why it ended.
    with sqlite3.connect(tmp_path / "traces.db") as db:
        db.row_factory = sqlite3.Row
        rows = {row["request_id"]: row for row in db.execute("SELECT * FROM requests")}
    assert (rows["finished"]["status"], rows["finished"]["error"]) == (200, None)
    for request_id in ("cut-openai", "cut-anthropic", "cut-translated", "cut-responses"):
        row = rows[request_id]
        assert (row["status"], row["error"]) == (200, SHUTDOWN_MESSAGE), request_id
        columns = set(row.keys())  # a Row's `in` looks at its values
        if "outcome" in columns:  # the store's outcome column, where it has one
            assert row["outcome"] == "shutdown"


def test_requests_still_running_at_the_bound_are_recorded_as_ended_by_shutdown(upstreams):
    """In-process, at the record level: a stream under way and a request still waiting for
    its provider, each answered in its client's format and recorded as a shutdown."""
    for state, _ in upstreams.values():
        state.clear()
    seen: list = []
    config = config_from_yaml(config_text(upstreams).replace("{port}", "12000"))
    proxy = ProxyThread(config, shutdown_timeout=0.5, observers=[seen.append]).__enter__()
    upstreams["openai"][0].push(endless_stream(0.05), hang())
    oa = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
    stream = Reader(lambda: oa.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    stream.start()
    assert stream.started.wait(10)
    waiting: dict = {}

    def call() -> None:
        try:
            oa.chat.completions.create(model="gpt-4o", messages=USER)
        except openai.APIStatusError as exc:
            waiting["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)  # the call reaches the provider, which never answers
    started = time.monotonic()
    proxy.stop()
    took = time.monotonic() - started
    stream.join(5)
    caller.join(5)

    assert took < 0.5 + MARGIN_S
    assert isinstance(stream.error, openai.APIError)
    assert not isinstance(stream.error, openai.APIConnectionError)
    error = waiting["error"]
    assert error.status_code == 503
    assert error.body["message"] == SHUTDOWN_MESSAGE
    by_stream = {record.stream: record for record in seen}
    assert by_stream[True].outcome is Outcome.SHUTDOWN
    assert (by_stream[True].status, by_stream[True].error) == (200, SHUTDOWN_MESSAGE)
    assert by_stream[True].attempts[0].outcome == "ok"
    assert by_stream[False].outcome is Outcome.SHUTDOWN
    assert by_stream[False].status == 503


@pytest.mark.slow
def test_plano_down_waits_for_the_bound_the_instance_was_started_with(upstreams, tmp_path):
    # `down` used to wait 30 s whatever the instance's bound: with the default 30 s bound
    # it killed the gateway just as it was ending its streams and writing their traces.
    for state, _ in upstreams.values():
        state.clear()
    port = free_port()
    path = tmp_path / "plano.yaml"
    path.write_text(config_text(upstreams).replace("{port}", str(port)))
    env = {**os.environ, "PLANO_HOME": str(tmp_path)}

    def plano(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "plano_cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    started = plano("up", "-d", str(path), "--shutdown-timeout", "1")
    assert started.returncode == 0, started.stderr
    meta = json.loads((tmp_path / "run" / "plano.json").read_text())
    try:
        assert meta["shutdown_timeout"] == 1.0
        assert daemon.stop_timeout(meta) == 1.0 + daemon.STOP_MARGIN_S
        upstreams["openai"][0].push(endless_stream(0.05))
        oa = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        reader = Reader(
            lambda: oa.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        )
        reader.start()
        assert reader.started.wait(20)
        stopped = plano("down")
        reader.join(10)
    finally:
        if (tmp_path / "run" / "plano.pid").exists():
            os.kill(meta["pid"], signal.SIGKILL)
    assert stopped.returncode == 0
    assert "plano stopped (" in stopped.stdout, stopped.stdout + stopped.stderr
    assert "killed" not in stopped.stderr
    assert isinstance(reader.error, openai.APIError)
    assert SHUTDOWN_MESSAGE in str(reader.error)


def test_plano_down_waits_thirty_seconds_and_a_margin_for_an_older_instance():
    assert daemon.stop_timeout(None) == 30.0 + daemon.STOP_MARGIN_S
    assert daemon.stop_timeout({"shutdown_timeout": "soon"}) == 30.0 + daemon.STOP_MARGIN_S
    assert daemon.stop_timeout({"shutdown_timeout": 120}) == 120 + daemon.STOP_MARGIN_S
