"""The `plano up --workers N` parent in-process: what it warns about, how it restarts a
worker that does not start, and what its first worker reports for the banner."""

from __future__ import annotations

import asyncio
import pickle
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from types import SimpleNamespace

from conftest import check

from plano_cli.serve import orchestrator_rows
from proxy.config import Mode
from proxy.server import supervisor
from proxy.server.supervisor import OrchestratorSummary, WorkerPool, _unshared_warnings, _Worker
from proxy.server.worker_main import _report

ENV = {"K": "sk-test-key"}
HEAD = """\
version: v0.4.0
listeners: [{type: model, port: 12000}]
model_providers:
  - {model: openai/gpt-4o, access_key: $K, default: true}
  - {model: openai/gpt-4o-mini, access_key: $K}
"""
ROUTES = """\
routing_preferences:
  - {name: code, description: writing code, models: [openai/gpt-4o]}
"""
LIMITS = """\
ratelimits:
  - {model: openai/gpt-4o, selector: {key: x-team}, limit: {tokens: 5, unit: minute}}
"""
SHARED = "shared_state: {type: redis, url: 'redis://h:6379'}\n"


def loaded(top: str):
    result = check(HEAD + top, env=ENV, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.errors]
    return result.config


def test_an_in_memory_session_cache_with_routes_is_said():
    (warning,) = _unshared_warnings(loaded(ROUTES), 2)
    assert "routing.session_cache is in memory" in warning
    assert _unshared_warnings(loaded(""), 2) == []  # no routes: nothing to be sticky


def test_ratelimits_without_shared_state_are_said_with_the_multiple():
    (warning,) = _unshared_warnings(loaded(LIMITS), 3)
    assert warning == (
        "ratelimits without shared_state: each of the 3 workers keeps its own budget "
        "(up to 3× each limit); set shared_state"
    )
    # With shared_state the buckets are in Redis: one budget for every worker.
    assert _unshared_warnings(loaded(LIMITS + SHARED), 3) == []


def test_a_restarted_worker_that_never_answers_is_killed_and_started_again(monkeypatch):
    """A fresh worker that does not get ready must not keep the slot: the watcher would
    wait on it forever instead of starting another."""
    monkeypatch.setattr(supervisor, "START_TIMEOUT_S", 0.3)
    pool = WorkerPool(loaded(""), 1, backoff_first_s=0.01)
    spawned: list[_Worker] = []

    def start(code: str) -> _Worker:
        ours, theirs = socket.socketpair()
        # The child holds its end open and never writes: a hung worker, not an exited one.
        process = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
        )
        theirs.close()
        return _Worker(0, process, Connection(ours.detach()), time.monotonic())

    async def hung(index: int) -> _Worker:
        worker = start("import time; time.sleep(60)")
        pool._slots[index] = worker  # as _spawn does: it takes the slot before it is ready
        spawned.append(worker)
        return worker

    monkeypatch.setattr(pool, "_spawn", hung)

    async def scenario() -> None:
        pool._slots[0] = start("pass")  # the worker that exits
        watcher = asyncio.create_task(pool._watch(0))
        try:
            deadline = time.monotonic() + 15
            while len(spawned) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            pool._stopping = True
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    try:
        asyncio.run(scenario())
        assert len(spawned) >= 2, "the watcher waited on the hung worker"
        first = spawned[0]
        assert first.process.poll() is not None  # killed, not left running
        assert first.conn.closed
    finally:
        for worker in [*spawned, *pool._slots.values()]:
            worker.process.kill()
            worker.process.wait(5)
            worker.conn.close()


def _orchestrator(notes: list[str] | None) -> SimpleNamespace:
    service = None if notes is None else SimpleNamespace(notes=notes)
    return SimpleNamespace(
        ids=("a", "b"),
        default="a",
        describe=lambda: "router: arch-router (embedded)",
        service=service,
    )


def across_the_pipe(orchestrator: SimpleNamespace) -> OrchestratorSummary:
    """The orchestrator as the parent sees it: reported by its first worker, pickled."""
    server = SimpleNamespace(orchestrators={"agents": orchestrator}, bound=[], router=None)
    report = pickle.loads(pickle.dumps(_report(server)))
    return OrchestratorSummary(*report.orchestrators["agents"])


def test_a_workers_orchestrator_shows_in_the_banner_as_in_one_process():
    for notes in (["a note", "another", "router: arch-router (embedded)"], ["router: x"], None):
        orchestrator = _orchestrator(notes)
        rows = orchestrator_rows("agents", orchestrator)
        assert orchestrator_rows("agents", across_the_pipe(orchestrator)) == rows
    rows = orchestrator_rows("agents", across_the_pipe(_orchestrator(["a note", "router: x"])))
    assert rows[1:] == [
        ("orchestrator", "router: arch-router (embedded)"),
        ("", "[yellow]a note[/yellow]"),  # the notes, not the router line
    ]
