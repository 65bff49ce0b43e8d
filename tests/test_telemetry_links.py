"""`plano up --workers N` telemetry in-process: a gateway's HubSink over its link to the
telemetry worker, and the worker's intake that every link's reader feeds."""

from __future__ import annotations

import pickle
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection, Listener

from proxy.telemetry.metrics import GatewayMetrics
from proxy.telemetry.processor import TelemetryProcessor
from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.sink import HubSink
from proxy.telemetry.worker import Backlog, Intake

KEY = b"k" * 32


def record(sampled: bool = False) -> TelemetryRecord:
    return TelemetryRecord(
        trace_id="0" * 31 + "1",
        span_id="0" * 15 + "1",
        sampled=sampled,
        start_ns=0,
        end_ns=1,
        request_id="r",
        listener="llm",
        api="openai_chat",
        path="/v1/chat/completions",
    )


class Hub:
    """The telemetry worker's socket, as a test sees it: every message of one link."""

    def __init__(self, address: str):
        self.listener = Listener(address, family="AF_UNIX", authkey=KEY)
        self.conns: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        with suppress(OSError):  # closed before a link came
            self.conns.put(self.listener.accept())

    def messages(self, conn: Connection) -> list[tuple]:
        out = []
        while conn.poll(0.5):
            out.append(pickle.loads(conn.recv_bytes()))
        return out

    def close(self) -> None:
        self.listener.close()


@contextmanager
def hub_sink(tmp_path) -> Iterator[tuple[HubSink, str]]:
    address = str(tmp_path / "telemetry.sock")
    settings = WorkerSettings(gateway_socket=address, gateway_authkey=KEY)
    sink = HubSink(settings, restart_interval_s=0.0)
    try:
        yield sink, address
    finally:
        sink._closing = True
        sink._broken()


def test_store_gauges_are_sent_again_once_linked_to_a_restarted_worker(tmp_path):
    with hub_sink(tmp_path) as (sink, address):
        first = Hub(address)
        sink.launch()  # no sender thread: each _ship() below is one wake-up
        conn = first.conns.get(timeout=5)
        sink.store_up("redis", True)
        sink._ship()
        assert first.messages(conn) == [("stores", {}, {"redis": True})]

        # The telemetry worker dies; the parent starts another on the same socket.
        conn.close()
        first.close()
        second = Hub(address)
        sink.put(record())
        sink._ship()  # fails on the dead link: dropped and counted
        sink.put(record())
        sink._ship()  # links again
        conn = second.conns.get(timeout=5)
        kinds = [(m[0], m[2]) for m in second.messages(conn)]
        # The new worker's gauge starts unset: the state the gateway knows is sent again.
        assert kinds == [("batch", 0), ("stores", {"redis": True})]
        second.close()


def test_a_store_change_alone_links_again_after_the_worker_restarted(tmp_path):
    with hub_sink(tmp_path) as (sink, address):
        first = Hub(address)
        sink.launch()
        conn = first.conns.get(timeout=5)
        conn.close()
        first.close()
        second = Hub(address)
        # No record to ship: the store's health must find the way to the new worker itself.
        sink.store_up("redis", False)
        sink.store_error("redis", "get")
        sink._ship()  # the send fails: the link is given up
        sink._ship()  # and made again
        conn = second.conns.get(timeout=5)
        assert second.messages(conn) == [("stores", {("redis", "get"): 1}, {"redis": False})]
        second.close()


class _Overlaps:
    """A processor that notes whether two readers were ever inside it at once."""

    def __init__(self):
        self.inside = 0
        self.overlapped = False
        self.metrics = self

    def _enter(self) -> None:
        self.inside += 1
        self.overlapped |= self.inside > 1
        time.sleep(0.0005)  # a batch's worth of work, during which others may come
        self.inside -= 1

    def observe(self, records, dropped):
        self._enter()
        return []

    def observe_stores(self, errors, up):
        self._enter()


def test_link_readers_and_the_read_loop_take_turns():
    """One reader per gateway link, and the pipe's: the processor's counters and the
    metrics' series caps are not safe to update from several at once."""
    processor = _Overlaps()
    intake = Intake(processor, Backlog(queue.SimpleQueue()))  # type: ignore[arg-type]
    run(lambda: intake.take([], 0), lambda: intake.stores({}, {}), count=50)
    assert not processor.overlapped


def test_link_readers_and_the_read_loop_count_every_record():
    processor = TelemetryProcessor(WorkerSettings(store_enabled=False), GatewayMetrics())
    backlog = Backlog(queue.SimpleQueue(), max_records=10**9, max_bytes=10**12)
    intake = Intake(processor, backlog)
    batches, size = 100, 5
    run(
        lambda: intake.take([record(sampled=True) for _ in range(size)], 1),
        lambda: intake.stores({("redis", "get"): 1}, {"redis": True}),
        count=batches,
    )
    assert processor.stats.records == THREADS * batches * size
    assert processor.stats.dropped == THREADS * batches
    assert backlog.records == THREADS * batches * size


THREADS = 8


def run(take, stores, count: int) -> None:
    def feed() -> None:
        for _ in range(count):
            take()
            stores()

    threads = [threading.Thread(target=feed) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
