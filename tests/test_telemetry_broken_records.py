"""A record that cannot be stored as it is never costs another record its storage.

One request with `X-Model-Affinity: \\xff` used to take its whole batch down (`could not
write 9 traces`, TypeError: str is not valid UTF-8). Now a value that cannot be stored is
stored replaced (proxy/telemetry/storable.py) and counted in
plano_telemetry_fields_replaced_total, and a batch the store refuses is written again one
trace at a time. Hypothesis makes up the records, broken ones among them; the real
processor writes a real SQLite store.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from proxy.telemetry.metrics import GatewayMetrics
from proxy.telemetry.processor import TelemetryProcessor
from proxy.telemetry.record import AttemptRecord, TelemetryRecord
from proxy.telemetry.settings import WorkerSettings
from proxy.telemetry.storable import escape_surrogates, is_utf8
from proxy.telemetry.store import SpanRow, StoreBatch, TraceStore
from proxy.telemetry.store_scrub import scrub_text

SURROGATES = ["\udcff", "\udc80", "\ud800", "\udfff"]


def chat_body(*contents: str) -> bytes:
    messages = [{"role": "user", "content": c} for c in contents]
    return orjson.dumps({"model": "gpt-4o", "messages": messages})


def answer_body(content: str) -> bytes:
    message = {"role": "assistant", "content": content}
    return orjson.dumps({"choices": [{"index": 0, "message": message}]})


# --- what a record can hold: text, numbers and bodies from clients and upstreams ----------

texts = st.one_of(
    st.text(max_size=12),
    st.lists(
        st.sampled_from([*SURROGATES, "a", "é", "\x00", "key: ", "sk-abcdefgh", "Bearer x"]),
        max_size=8,
    ).map("".join),
    st.integers(1_000, 30_000).map(lambda n: "a" * n),  # one long word
)
numbers = st.one_of(st.none(), st.integers(-(2**70), 2**70))
# JSON bodies as written by json (lone surrogates escaped), deep nesting, bytes that are
# not UTF-8, truncated JSON.
bodies = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.lists(texts, min_size=1, max_size=3).map(lambda c: chat_body(*map(escape_surrogates, c))),
    st.lists(texts, min_size=1, max_size=2).map(
        lambda c: json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": x} for x in c]}
        ).encode()
    ),
    st.integers(1, 5_000).map(lambda d: b'{"model":"m","messages":' + b"[" * d + b"]" * d + b"}"),
    st.integers(1, 300).map(
        lambda d: json.dumps(  # orjson writes no more than 254 levels
            {"model": "m", "messages": [{"role": "user", "content": _deep_parts(d)}]}
        ).encode()
    ),
    st.binary(max_size=16).map(lambda b: b'{"choices":[{"message":{"content":"' + b + b'"}}]}'),
)
attribute_values = st.one_of(
    texts, numbers, st.floats(), st.booleans(), st.lists(texts, max_size=3)
)


def _deep_parts(depth: int) -> Any:
    value: Any = {"type": "text", "text": "deep"}
    for _ in range(depth):
        value = {"type": "text", "text": "x", "nested": [value]}
    return [value]


@st.composite
def records(draw: st.DrawFn, i: int) -> TelemetryRecord:
    """A record as the worker might get it: every field a client or upstream influences
    made up, including values that cannot be stored as they are."""
    now = time.time_ns()
    stream = draw(st.booleans())
    response = draw(bodies)
    if stream and response is not None and draw(st.booleans()):
        response = b"data: " + response + b"\n\ndata: \xff\xfe\n\n"
    return TelemetryRecord(
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        sampled=True,
        start_ns=now,
        end_ns=now + draw(st.integers(0, 10**12)),
        request_id=draw(texts),
        listener="llm",
        api=draw(st.sampled_from(["openai_chat", "anthropic_messages", "openai_responses"])),
        path=draw(texts),
        stream=stream,
        requested_model=draw(st.none() | texts),
        model=draw(st.sampled_from([None, "openai/gpt-4o"])),
        provider="openai",
        status=draw(st.sampled_from([200, 400, 429, 500, 502])),
        error=draw(st.none() | texts),
        input_tokens=draw(numbers),
        output_tokens=draw(numbers),
        cached_input_tokens=draw(numbers),
        reasoning_tokens=draw(numbers),
        attempts=[
            AttemptRecord(f"{i + 1:016x}", "openai/gpt-4o", "openai", draw(texts), now, now + 1)
        ],
        session=draw(st.none() | texts),
        attributes=draw(st.dictionaries(texts, attribute_values, max_size=4)),
        request_body=draw(bodies),
        response_body=response,
        response_truncated=draw(st.booleans()),
    )


@st.composite
def batches(draw: st.DrawFn) -> list[TelemetryRecord]:
    count = draw(st.integers(1, 6))
    return [draw(records(i + 1)) for i in range(count)]


def process(batch: list[TelemetryRecord]) -> tuple[TelemetryProcessor, TraceStore, Path]:
    directory = Path(tempfile.mkdtemp())
    store = TraceStore.open(directory / "traces.db")
    processor = TelemetryProcessor(WorkerSettings(), GatewayMetrics(), store)
    processor.trace(batch)
    return processor, store, directory


def replaced(processor: TelemetryProcessor) -> dict[str, float]:
    text = processor.metrics.render()[0].decode()
    return {
        s.labels["field"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "plano_telemetry_fields_replaced_total"
    }


@given(batches())
@example(
    [
        TelemetryRecord(
            "0" * 31 + "1",
            "0" * 15 + "1",
            True,
            1,
            2,
            "r1",
            "llm",
            "openai_chat",
            "/v1",
            session="\udcff",
        ),
        TelemetryRecord(
            "0" * 31 + "2", "0" * 15 + "2", True, 1, 2, "r2", "llm", "openai_chat", "/v1"
        ),
    ]
)
def test_every_record_is_stored_whatever_it_holds(batch: list[TelemetryRecord]) -> None:
    processor, store, _ = process(batch)
    with store:
        for record in batch:
            detail = store.get_trace(record.trace_id)
            assert detail is not None, record.trace_id
            assert detail.calls, record.trace_id
            row = detail.calls[0]
            for name in ("request_id", "session", "error", "requested_model"):
                value = getattr(record, name)
                expected = None if value is None else escape_surrogates(scrub_text(value))
                assert getattr(row, name) == expected, name
    assert processor.stats.store_lost == 0
    # Text that is not valid UTF-8 was stored escaped, and counted.
    surrogate_sessions = [r for r in batch if r.session and not is_utf8(scrub_text(r.session))]
    if surrogate_sessions:
        assert replaced(processor).get("session", 0) >= len(surrogate_sessions)


def test_a_non_utf8_affinity_is_stored_escaped_and_counted(tmp_path: Path) -> None:
    batch = [
        TelemetryRecord(
            f"{i:032x}",
            f"{i:016x}",
            True,
            1,
            2,
            f"r{i}",
            "llm",
            "openai_chat",
            "/v1",
            session="\udcff" if i == 1 else f"s{i}",
            request_body=chat_body("hi"),
            response_body=answer_body("hello"),
        )
        for i in range(1, 10)
    ]
    processor, store, _ = process(batch)
    with store:
        rows = store.list_traces(limit=100)
        detail = store.get_trace(f"{1:032x}")
    assert len(rows) == 9
    assert detail.calls[0].session == "\\xff"
    inbound = next(s for s in detail.spans if s.name == "plano(inbound)")
    assert inbound.attributes["session.id"] == "\\xff"
    # Once in the requests table, once in the span's attributes.
    assert replaced(processor) == {"session": 1.0, "attributes": 1.0}


def test_a_trace_the_store_refuses_takes_only_itself_down(tmp_path: Path) -> None:
    # A span without its id cannot be stored at all (its key): the batch fails, and is
    # then written trace by trace, so only that trace is lost.
    store = TraceStore.open(tmp_path / "traces.db")
    processor = TelemetryProcessor(WorkerSettings(), GatewayMetrics(), store)
    spans = [SpanRow(f"{i:016x}", f"{i:032x}", "agent.step", i) for i in range(1, 6)]
    spans.append(SpanRow(None, f"{99:032x}", "broken", 1))  # type: ignore[arg-type]
    processor.ingest(StoreBatch(spans=spans))
    with store:
        for i in range(1, 6):
            assert store.get_trace(f"{i:032x}") is not None
        assert store.get_trace(f"{99:032x}") is None
    assert (processor.stats.store_errors, processor.stats.store_lost) == (2, 1)
