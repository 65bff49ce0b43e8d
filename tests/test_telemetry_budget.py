"""No record can hold up the others: each is analysed within its budget, stored cut when it
is over it, and the cut is said (proxy/telemetry/budget.py).

The real processor writes a real SQLite store in tmp_path. A 20 MB answer of one letter
used to keep the writer busy for 146 s of CPU while every trace behind it waited.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from linear_time import growth
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.telemetry import analysis, budget, store_scrub
from proxy.telemetry.metrics import GatewayMetrics
from proxy.telemetry.processor import TelemetryProcessor
from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.store import TraceStore

GIANT = 20_000_000


def tid(i: int) -> str:
    return f"{i:032x}"


def record(i: int, **fields: Any) -> TelemetryRecord:
    base: dict[str, Any] = {
        "trace_id": tid(i),
        "span_id": f"{i:016x}",
        "sampled": True,
        "start_ns": time.time_ns(),
        "end_ns": time.time_ns() + 1_000_000,
        "request_id": f"req-{i}",
        "listener": "llm",
        "api": "openai_chat",
        "path": "/v1/chat/completions",
        "status": 200,
        "model": "openai/gpt-4o",
        "provider": "openai",
        "request_body": chat_request(f"question {i}"),
        "response_body": chat_answer(f"answer {i}"),
    }
    return TelemetryRecord(**(base | fields))


def chat_request(*contents: str) -> bytes:
    messages = [{"role": "user", "content": c} for c in contents]
    return orjson.dumps({"model": "gpt-4o", "messages": messages})


def chat_answer(content: str) -> bytes:
    message = {"role": "assistant", "content": content}
    return orjson.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})


class Worker:
    """The writer's side of the worker: the real processor over a real store."""

    def __init__(self, path: Path):
        self.metrics = GatewayMetrics()
        self.store = TraceStore.open(path)
        self.processor = TelemetryProcessor(WorkerSettings(), self.metrics, self.store)

    def trace(self, *records: TelemetryRecord) -> None:
        self.processor.trace(list(records))

    def request(self, i: int) -> Any:
        detail = self.store.get_trace(tid(i))
        assert detail is not None, f"trace {i} was not stored"
        assert detail.calls, f"trace {i} has no summary"
        return detail

    def metric(self, name: str) -> dict[tuple, float]:
        text = self.metrics.render()[0].decode()
        return {
            tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == name
        }


@pytest.fixture
def worker(tmp_path: Path):
    w = Worker(tmp_path / "traces.db")
    yield w
    w.store.close()


def inbound(detail: Any) -> dict[str, Any]:
    return next(s for s in detail.spans if s.name == "plano(inbound)").attributes


def test_a_giant_answer_is_stored_cut_and_said_so_and_the_others_whole(worker: Worker) -> None:
    words = "word " * (GIANT // 5)
    worker.trace(record(1), record(2, response_body=chat_answer(words)), record(3))

    giant = worker.request(2)
    stored = giant.calls[0].response_messages[0]["content"]
    marker = budget.MARKER.format(len(words) - (budget.MAX_TEXT - len("question 2")))
    assert stored.startswith("word word")
    assert stored.endswith("word ")
    assert marker in stored
    assert len(stored) == budget.MAX_TEXT - len("question 2") + len(marker)
    assert giant.calls[0].request_messages == [{"role": "user", "content": "question 2"}]
    assert inbound(giant)["plano.messages.truncated"] is True
    for i in (1, 3):  # the neighbours: whole, unmarked
        detail = worker.request(i)
        assert detail.calls[0].response_messages[0]["content"] == f"answer {i}"
        assert "plano.messages.truncated" not in inbound(detail)
    assert worker.metric("plano_telemetry_truncated_total") == {(("reason", "text"),): 1.0}


def test_short_texts_are_kept_whole_and_the_long_ones_share_the_rest(worker: Worker) -> None:
    long = "old " * (budget.MAX_TEXT // 4)  # the whole budget on its own
    worker.trace(
        record(1, request_body=chat_request(long, "the question"), response_body=chat_answer(long))
    )
    request = worker.request(1).calls[0]
    first, question = request.request_messages
    answer = request.response_messages[0]
    assert question["content"] == "the question"
    share = (budget.MAX_TEXT - len("the question")) // 2
    for message in (first, answer):
        assert message["content"].startswith("old old")
        assert message["content"].endswith("old ")
        assert budget.MARKER.format(len(long) - share) in message["content"]


def test_a_giant_record_costs_what_a_record_at_the_budget_costs(worker: Worker) -> None:
    # Its work is bounded: analysing and storing 20 MB of one letter takes about as much
    # CPU as 1 MB (it took 146 s before, quadratic scrubbing of a text stored whole).
    def one(size: int) -> TelemetryRecord:
        return record(one.count, response_body=chat_answer("a" * size))

    one.count = 10  # type: ignore[attr-defined]

    def trace(size: int) -> None:
        one.count += 1  # type: ignore[attr-defined]
        worker.trace(one(size))

    ratio = growth(trace, budget.MAX_TEXT, GIANT)
    assert ratio <= 4, f"{ratio:.1f}x the CPU of a record at the budget"


def test_what_is_scrubbed_and_scored_is_bounded(worker: Worker, monkeypatch) -> None:
    seen: dict[str, int] = {"scrubbed": 0, "scored": 0}
    redact = store_scrub.redact_text
    score = analysis.analyze_signals

    def counting_redact(text: str, limit: int = 500) -> str:
        seen["scrubbed"] += len(text)
        return redact(text, limit)

    def counting_score(messages: Any, response: Any = None, **kwargs: Any) -> Any:
        texts = [*messages, *([response] if response else [])]
        seen["scored"] += sum(len(m["content"]) for m in texts)
        return score(messages, response, **kwargs)

    monkeypatch.setattr(store_scrub, "redact_text", counting_redact)
    monkeypatch.setattr(analysis, "analyze_signals", counting_score)
    worker.trace(
        record(
            1,
            request_body=chat_request("key " * 3_000_000, "sk-" + "a" * 5_000_000),
            response_body=chat_answer("=@" * GIANT),
        )
    )
    # The messages' text, their markers and the JSON around them; the spans' few strings.
    assert seen["scored"] <= budget.MAX_TEXT + 3 * 100
    assert seen["scrubbed"] <= 2 * budget.MAX_TEXT
    stored = worker.request(1).calls[0]
    assert "sk-aaaaaa" not in orjson.dumps(stored.request_messages).decode()  # still masked


def test_many_messages_keep_the_newest_and_say_so(worker: Worker) -> None:
    contents = [f"message {n}" for n in range(budget.MAX_MESSAGES + 500)]
    parts = [{"type": "text", "text": f"part {n} "} for n in range(budget.MAX_PARTS + 50)]
    body = orjson.loads(chat_request(*contents))
    body["messages"][-1]["content"] = parts
    worker.trace(record(1, request_body=orjson.dumps(body)))
    detail = worker.request(1)
    messages = detail.calls[0].request_messages
    assert len(messages) == budget.MAX_MESSAGES
    assert messages[0]["content"] == "message 500"
    assert messages[-1]["content"] == "".join(f"part {n} " for n in range(budget.MAX_PARTS))
    assert inbound(detail)["plano.messages.truncated"] is True
    assert worker.metric("plano_telemetry_truncated_total") == {(("reason", "messages"),): 1.0}


def test_a_long_stream_is_replayed_up_to_its_budget(worker: Worker) -> None:
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"abc "}}]}\n\n'
    stream = chunk * (2 * budget.MAX_STREAM_BYTES // len(chunk))
    worker.trace(record(1, stream=True, response_body=stream))
    detail = worker.request(1)
    content = detail.calls[0].response_messages[0]["content"]
    assert content.startswith("abc abc")
    assert len(content) < budget.MAX_STREAM_BYTES / 10
    assert inbound(detail)["plano.messages.truncated"] is True


def test_a_stream_the_gateway_cut_is_marked_too(worker: Worker) -> None:
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"abc "}}]}\n\n'
    worker.trace(record(1, stream=True, response_body=chunk * 3, response_truncated=True))
    assert inbound(worker.request(1))["plano.messages.truncated"] is True
    assert worker.metric("plano_telemetry_truncated_total") == {(("reason", "stream"),): 1.0}


def test_out_of_cpu_time_the_signals_are_skipped_and_the_trace_says_so(
    worker: Worker, monkeypatch
) -> None:
    monkeypatch.setattr(budget, "MAX_CPU_SECONDS", 0.0)
    worker.trace(record(1, request_body=chat_request("thanks, that worked")))
    detail = worker.request(1)
    assert detail.calls[0].request_messages == [{"role": "user", "content": "thanks, that worked"}]
    assert detail.calls[0].signal_quality is None
    assert inbound(detail)["plano.messages.truncated"] is True
    assert worker.metric("plano_telemetry_truncated_total") == {(("reason", "time"),): 1.0}


def test_traces_show_says_the_messages_were_cut(worker: Worker) -> None:
    worker.trace(record(1, response_body=chat_answer("word " * budget.MAX_TEXT)))
    result = CliRunner().invoke(app, ["traces", "show", tid(1), "--db", str(worker.store.path)])
    assert result.exit_code == 0, result.output
    assert "plano.messages.truncated=true" in result.stdout.replace(" ", "").lower()
