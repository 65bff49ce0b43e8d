"""`plano up --workers N` telemetry in-process: a gateway's HubSink over its link to the
telemetry worker."""

from __future__ import annotations

import pickle
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection, Listener

from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.sink import HubSink

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
