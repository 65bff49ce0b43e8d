"""Finished requests as spans, store rows and signals: analysis, spans, span rows.

Records are built by hand the way the gateway fills them; stream bodies come from the
project's own renderers, so they are byte for byte what a client received. Times are
fixed numbers: nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, StatusCode

from proxy.canonical import (
    ChatResponse,
    Finish,
    StopReason,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageReport,
)
from proxy.pricing import Price
from proxy.telemetry.analysis import RecordAnalysis, analyze_record
from proxy.telemetry.record import AttemptRecord, RoutingRecord, TelemetryRecord
from proxy.telemetry.span_rows import request_row, rows_from_spans, signal_rows, store_batch
from proxy.telemetry.spans import build_spans
from proxy.telemetry.store import TraceStore
from proxy.wire import anthropic_messages, openai_chat, openai_responses

TRACE = "0af7651916cd43dd8448eb211c80319c"
ROOT = "b7ad6b7169203331"
CLIENT_PARENT = "00f067aa0ba902b7"
ROUTER = "1111111111111111"
FIRST = "2222222222222222"
SECOND = "3333333333333333"
T0 = 1_750_000_000_000_000_000  # epoch ns
MS = 1_000_000
RESOURCE = Resource({"service.name": "plano"})
SCOPE = InstrumentationScope("plano", "0.1.0")
CONFIG_ATTRIBUTES = {"deployment.environment": "test", "tenant.id": "acme"}

# Every key Plano itself may set, by span: anything else would be a leak (a header, a body).
ALLOWED_KEYS = {
    "plano(inbound)": {
        "http.request.method",
        "url.path",
        "http.response.status_code",
        "plano.request_id",
        "plano.listener",
        "plano.api",
        "llm.model",
        "route.selected_model",
        "llm.provider",
        "llm.is_streaming",
        "plano.passthrough",
        "session.id",
        "signals.quality",
        "signals.quality_score",
        "signals.count",
        "signals.turn_count",
        "signals.efficiency",
    },
    "plano(routing)": {
        "routing.determination_ms",
        "route.name",
        "route.selected_model",
        "route.models",
        "router.backend",
        "router.cached",
        "router.pinned",
        "router.escalated",
        "router.fallback",
        "router.scores",
    },
    "plano(llm)": {
        "llm.model",
        "llm.provider",
        "llm.outcome",
        "llm.duration_ms",
        "llm.time_to_first_token",
        "llm.time_per_output_token_ms",
        "llm.usage.prompt_tokens",
        "llm.usage.completion_tokens",
        "llm.usage.total_tokens",
        "llm.usage.cached_input_tokens",
        "llm.usage.reasoning_tokens",
        "llm.usage.cost_usd",
        "llm.usage.prompt_cost_usd",
        "llm.usage.completion_cost_usd",
    },
}

# A conversation with one signal: the user corrects the assistant.
HAIKU = [
    {"role": "user", "content": "Write a haiku about the sea."},
    {"role": "assistant", "content": "Waves fold into foam, salt wind hums an old refrain."},
    {"role": "user", "content": "No, that's wrong. I asked for a haiku about the mountains!"},
]


# --- builders ---------------------------------------------------------------------------


def sse(renderer: Any, events: list[StreamEvent]) -> bytes:
    return b"".join(renderer.render(e) for e in events) + renderer.finish()


def record(**fields: Any) -> TelemetryRecord:
    base: dict[str, Any] = {
        "trace_id": TRACE,
        "span_id": ROOT,
        "sampled": True,
        "start_ns": T0,
        "end_ns": T0 + 100 * MS,
        "request_id": "req-1",
        "listener": "llm",
        "api": "openai_chat",
        "path": "/v1/chat/completions",
        "status": 200,
        "attributes": dict(CONFIG_ATTRIBUTES),
    }
    return TelemetryRecord(**(base | fields))


def openai_json() -> TelemetryRecord:
    """A passthrough OpenAI request answered with JSON, usage and cached input."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
        ],
    }
    response = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200},
    }
    return record(
        passthrough=True,
        requested_model="gpt-4o-mini",
        model="openai/gpt-4o-mini",
        provider="openai",
        input_tokens=1000,
        output_tokens=200,
        cached_input_tokens=400,
        attempts=[
            AttemptRecord(FIRST, "openai/gpt-4o-mini", "openai", "ok", T0 + MS, T0 + 90 * MS)
        ],
        request_body=orjson.dumps(body),
        response_body=orjson.dumps(response),
    )


ANTHROPIC_EVENTS: list[StreamEvent] = [
    StreamStart("msg_1", "claude-sonnet-4-5"),
    TextDelta("Let me check "),
    TextDelta("the weather."),
    ToolCallStart(0, "toolu_1", "get_weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, '"Paris"}'),
    Finish(StopReason.TOOL_CALLS),
    UsageReport(Usage(input_tokens=50, output_tokens=20, cached_input_tokens=10)),
]


def anthropic_stream() -> TelemetryRecord:
    """A streamed Anthropic request from a client that sent its own traceparent."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "stream": True,
        "system": "You are a weather bot.",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    return record(
        api="anthropic_messages",
        path="/v1/messages",
        parent_span_id=CLIENT_PARENT,
        end_ns=T0 + 1000 * MS,
        stream=True,
        requested_model="claude-sonnet-4-5",
        model="anthropic/claude-sonnet-4-5",
        provider="anthropic",
        first_token_ns=T0 + 300 * MS,
        input_tokens=50,
        output_tokens=20,
        cached_input_tokens=10,
        reasoning_tokens=0,
        session="sess-42",
        attempts=[
            AttemptRecord(
                FIRST, "anthropic/claude-sonnet-4-5", "anthropic", "ok", T0 + 5 * MS, T0 + 900 * MS
            )
        ],
        request_body=orjson.dumps(body),
        response_body=sse(anthropic_messages.StreamRenderer("claude-sonnet-4-5"), ANTHROPIC_EVENTS),
    )


RESPONSES_REQUEST = {"model": "gpt-4o", "instructions": "Be kind.", "input": "hi", "stream": True}
RESPONSES_EVENTS: list[StreamEvent] = [
    StreamStart("x", "gpt-4o"),
    TextDelta("Hello"),
    TextDelta(" there"),
    ToolCallStart(0, "call_1", "lookup"),
    ToolCallDelta(0, '{"q":1}'),
    Finish(StopReason.TOOL_CALLS),
    UsageReport(Usage(input_tokens=12, output_tokens=3)),
]


def responses_stream() -> TelemetryRecord:
    renderer = openai_responses.StreamRenderer("gpt-4o", "resp_1", RESPONSES_REQUEST)
    return record(
        api="openai_responses",
        path="/v1/responses",
        stream=True,
        requested_model="gpt-4o",
        model="openai/gpt-4o",
        provider="openai",
        first_token_ns=T0 + 20 * MS,
        input_tokens=12,
        output_tokens=3,
        attempts=[AttemptRecord(FIRST, "openai/gpt-4o", "openai", "ok", T0 + MS, T0 + 80 * MS)],
        request_body=orjson.dumps(RESPONSES_REQUEST),
        response_body=sse(renderer, RESPONSES_EVENTS),
    )


def routed_failover() -> TelemetryRecord:
    """The router picked a route; its first model answered 503 and the second served."""
    return record(
        requested_model="auto",
        model="openai/gpt-4o",
        provider="openai",
        end_ns=T0 + 500 * MS,
        input_tokens=30,
        output_tokens=5,
        routing=RoutingRecord(
            ROUTER,
            T0 + MS,
            T0 + 13 * MS,
            route="code",
            models=["anthropic/claude-sonnet-4", "openai/gpt-4o"],
            backend="embedded",
            latency_ms=12.5,
            cached=True,
            scores={"code": 0.91, "chat": 0.2},
        ),
        attempts=[
            AttemptRecord(
                FIRST,
                "anthropic/claude-sonnet-4",
                "anthropic",
                "HTTP 503",
                T0 + 14 * MS,
                T0 + 40 * MS,
            ),
            AttemptRecord(SECOND, "openai/gpt-4o", "openai", "ok", T0 + 41 * MS, T0 + 490 * MS),
        ],
        request_body=orjson.dumps({"model": "auto", "messages": HAIKU}),
        response_body=orjson.dumps(
            {
                "id": "chatcmpl-2",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Stone peaks hold the sky."},
                        "finish_reason": "stop",
                    }
                ],
            }
        ),
    )


def router_fallback() -> TelemetryRecord:
    return record(
        requested_model="auto",
        model="openai/gpt-4o-mini",
        provider="openai",
        routing=RoutingRecord(
            ROUTER,
            T0 + MS,
            T0 + 51 * MS,
            route=None,
            models=[],
            backend="ollama",
            latency_ms=50.0,
            fallback="router timeout",
        ),
        attempts=[
            AttemptRecord(FIRST, "openai/gpt-4o-mini", "openai", "ok", T0 + 52 * MS, T0 + 99 * MS)
        ],
    )


def bad_request() -> TelemetryRecord:
    """Rejected by the gateway before any upstream call."""
    return record(
        status=400,
        error="'messages' must be a non-empty array",
        requested_model="gpt-4o",
        end_ns=T0 + 2 * MS,
        request_body=b'{"model": "gpt-4o", "messages": []}',
        response_body=orjson.dumps(
            openai_chat.render_error(400, "'messages' must be a non-empty array")
        ),
    )


def analyzed(rec: TelemetryRecord, **options: Any) -> tuple[RecordAnalysis, list[ReadableSpan]]:
    options = {"signals": True, "capture": True} | options
    analysis = analyze_record(rec, **options)
    return analysis, build_spans(rec, analysis, RESOURCE, SCOPE)


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def ids(span: ReadableSpan) -> tuple[str, str, str | None, bool | None]:
    parent = span.parent
    return (
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
        f"{parent.span_id:016x}" if parent else None,
        parent.is_remote if parent else None,
    )


NEUTRAL_ONE_TURN = {
    "signals.quality": "neutral",
    "signals.quality_score": 60,
    "signals.count": 0,
    "signals.turn_count": 1,
    "signals.efficiency": 1.0,
}


# --- analysis ---------------------------------------------------------------------------


def test_openai_json_messages_signals_and_cost() -> None:
    analysis = analyze_record(openai_json(), signals=True, capture=True)
    assert analysis.request_messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert analysis.response_messages == [{"role": "assistant", "content": "4"}]
    assert analysis.report is not None
    assert analysis.report.signals == ()
    assert analysis.report.turn_count == 1
    # gpt-4o-mini: 600 fresh x 0.15 + 400 cached x 0.075 + 200 out x 0.60, per million.
    assert analysis.cost_usd == pytest.approx(240e-6)
    assert analysis.prompt_cost_usd == pytest.approx(120e-6)
    assert analysis.completion_cost_usd == pytest.approx(120e-6)
    assert analysis.capture is True


def test_anthropic_stream_rebuilds_text_and_tool_call() -> None:
    analysis = analyze_record(anthropic_stream(), signals=True, capture=True)
    assert analysis.request_messages == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert analysis.response_messages == [
        {
            "role": "assistant",
            "content": "Let me check the weather.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        }
    ]


def test_truncated_anthropic_stream_keeps_what_arrived() -> None:
    rec = anthropic_stream()
    assert rec.response_body is not None
    cut = rec.response_body.index(b"event: content_block_stop")
    rec.response_body = rec.response_body[: cut + 30]  # ends inside an event
    rec.response_truncated = True
    analysis = analyze_record(rec, signals=True, capture=True)
    assert analysis.response_messages == [
        {"role": "assistant", "content": "Let me check the weather."}
    ]
    assert analysis.request_messages is not None


RESPONSES_ANSWER = [
    {
        "role": "assistant",
        "content": "Hello there",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": '{"q":1}'},
            }
        ],
    }
]


def test_responses_stream_reads_the_terminal_event() -> None:
    analysis = analyze_record(responses_stream(), signals=True, capture=True)
    assert analysis.request_messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
    ]
    assert analysis.response_messages == RESPONSES_ANSWER


def test_responses_stream_without_terminal_event_accumulates_items() -> None:
    rec = responses_stream()
    assert rec.response_body is not None
    rec.response_body = rec.response_body[: rec.response_body.index(b"event: response.completed")]
    rec.response_truncated = True
    assert analyze_record(rec, signals=False, capture=True).response_messages == RESPONSES_ANSWER


def test_responses_stream_cut_mid_text_keeps_the_deltas() -> None:
    rec = responses_stream()
    assert rec.response_body is not None
    body = rec.response_body
    second_delta = body.index(b"event: response.output_text.delta", body.index(b"Hello"))
    rec.response_body = body[:second_delta]
    rec.response_truncated = True
    analysis = analyze_record(rec, signals=False, capture=True)
    assert analysis.response_messages == [{"role": "assistant", "content": "Hello"}]


def test_responses_json_reads_output_items() -> None:
    body = dict(RESPONSES_REQUEST, stream=False)
    answer = ChatResponse(
        id="resp_2",
        model="gpt-4o",
        content=[TextPart("Hi!")],
        tool_calls=[ToolCall("call_9", "lookup", '{"q":2}')],
        stop_reason=StopReason.TOOL_CALLS,
        usage=Usage(10, 4),
    )
    rendered = openai_responses.render_response(answer, "gpt-4o", "resp_2", body)
    rec = record(
        api="openai_responses",
        path="/v1/responses",
        model="openai/gpt-4o",
        input_tokens=10,
        output_tokens=4,
        request_body=orjson.dumps(body),
        response_body=orjson.dumps(rendered),
    )
    analysis = analyze_record(rec, signals=True, capture=True)
    assert analysis.request_messages == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "hi"},
    ]
    assert analysis.response_messages == [
        {
            "role": "assistant",
            "content": "Hi!",
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q":2}'},
                }
            ],
        }
    ]
    # gpt-4o: 10 x 2.50 + 4 x 10.00 per million.
    assert analysis.cost_usd == pytest.approx(65e-6)


def test_openai_chat_stream_and_tool_messages() -> None:
    renderer = openai_chat.StreamRenderer("gpt-4o", include_usage=True)
    events: list[StreamEvent] = [
        StreamStart("c1", "gpt-4o"),
        TextDelta("It is "),
        TextDelta("sunny."),
        Finish(StopReason.END),
        UsageReport(Usage(20, 3)),
    ]
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "sunny"},
        {"role": "user", "name": "ann", "content": [{"type": "text", "text": "So?"}]},
    ]
    rec = record(
        stream=True,
        request_body=orjson.dumps({"model": "gpt-4o", "messages": messages, "stream": True}),
        response_body=sse(renderer, events),
    )
    analysis = analyze_record(rec, signals=True, capture=True)
    assert analysis.request_messages == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "c"},
        {"role": "user", "content": "So?", "name": "ann"},
    ]
    assert analysis.response_messages == [{"role": "assistant", "content": "It is sunny."}]
    assert analysis.cost_usd is None  # the record has no usage


def test_capture_off_stores_no_messages_but_computes_signals() -> None:
    rec = routed_failover()
    analysis, spans = analyzed(rec, capture=False)
    assert analysis.request_messages is None
    assert analysis.response_messages is None
    assert analysis.report is not None
    assert [s.type for s in analysis.report.signals] == ["correction"]
    assert analysis.capture is False
    row = request_row(rec, analysis)
    assert (row.request_messages, row.response_messages) == (None, None)
    assert (row.signal_count, row.signal_score) == (1, analysis.report.score)
    # A snippet quotes the user: with capture off it goes nowhere.
    assert [(s.type, s.message_index, s.snippet) for s in signal_rows(rec, analysis)] == [
        ("correction", 2, None)
    ]
    (root,) = by_name(spans, "plano(inbound)")
    assert [(e.name, dict(e.attributes)) for e in root.events] == [
        (
            "signal.correction",
            {"type": "correction", "group": "misalignment", "message_index": 2, "confidence": 0.9},
        )
    ]
    everything = repr([(dict(s.attributes), [dict(e.attributes) for e in s.events]) for s in spans])
    for message in HAIKU:
        assert message["content"][:20] not in everything
    assert "Stone peaks" not in everything


def test_signals_off() -> None:
    rec = routed_failover()
    analysis, spans = analyzed(rec, signals=False)
    assert analysis.report is None
    assert analysis.request_messages == HAIKU
    (root,) = by_name(spans, "plano(inbound)")
    assert not any(k.startswith("signals.") for k in root.attributes)
    assert root.events == ()
    row = request_row(rec, analysis)
    assert (row.signal_quality, row.signal_score, row.signal_count) == (None, None, None)
    assert signal_rows(rec, analysis) == []


def test_neither_signals_nor_capture_skips_the_bodies() -> None:
    analysis = analyze_record(openai_json(), signals=False, capture=False)
    assert (analysis.request_messages, analysis.response_messages, analysis.report) == (
        None,
        None,
        None,
    )
    assert analysis.cost_usd == pytest.approx(240e-6)


def test_price_overrides_apply() -> None:
    overrides = {"openai/gpt-4o-mini": Price(1.0, 2.0)}
    analysis = analyze_record(
        openai_json(), signals=False, capture=False, price_overrides=overrides
    )
    # No cached rate: cached input is charged as input.
    assert analysis.cost_usd == pytest.approx((1000 * 1.0 + 200 * 2.0) / 1e6)
    assert analysis.prompt_cost_usd == pytest.approx(1000e-6)
    assert analysis.completion_cost_usd == pytest.approx(400e-6)


def test_no_cost_without_usage_model_or_price() -> None:
    for fields in (
        {"input_tokens": None},
        {"output_tokens": None},
        {"model": None},
        {"model": "unknown/model"},
    ):
        rec = openai_json()
        for key, value in fields.items():
            setattr(rec, key, value)
        analysis = analyze_record(rec, signals=False, capture=False)
        assert (analysis.cost_usd, analysis.prompt_cost_usd, analysis.completion_cost_usd) == (
            None,
            None,
            None,
        ), fields


GARBAGE = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b"[1, 2]",
    b"null",
    b'{"model": 3}',
    b'{"model": "m", "messages": "x", "input": 5, "choices": [1], "output": "o"}',
    b'{"choices": [{"message": {"tool_calls": [{"function": {}}]}}]}',
    b"data: {broken\n\n",
    b'event: response.completed\ndata: {"type": "response.completed", "response": 1}\n\n',
    b'data: {"choices": [{"delta": {"tool_calls": [{"index": "x"}]}}]}\n\n',
    b'data: {"type": "content_block_delta", "index": 0, "delta": 7}\n\n',
    b'data: {"type": "response.output_text.delta", "output_index": 0, "delta": 3}\n\n',
]


@pytest.mark.parametrize("api", ["openai_chat", "anthropic_messages", "openai_responses", "x"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("body", GARBAGE)
def test_unparsable_bodies_never_raise(api: str, stream: bool, body: bytes) -> None:
    rec = record(api=api, stream=stream, request_body=body, response_body=body)
    analysis, spans = analyzed(rec)
    assert analysis.request_messages is None
    assert analysis.report is not None
    assert [s.name for s in spans] == ["plano(inbound)"]


def test_a_broken_field_loses_only_its_own_part() -> None:
    rec = openai_json()
    rec.model = 123  # type: ignore[assignment]
    rec.status = None  # type: ignore[assignment]
    analysis = analyze_record(rec, signals=True, capture=True)
    assert analysis.cost_usd is None
    assert analysis.response_messages is None
    assert analysis.request_messages is not None
    assert analysis.report is not None


def test_a_broken_record_gives_an_empty_analysis() -> None:
    broken: Any = object()
    assert analyze_record(broken, signals=True, capture=True) == RecordAnalysis(capture=True)


# --- spans ------------------------------------------------------------------------------


def test_openai_json_spans() -> None:
    rec = openai_json()
    analysis, spans = analyzed(rec)
    assert [s.name for s in spans] == ["plano(inbound)", "plano(llm)"]
    root, llm = spans
    assert ids(root) == (TRACE, ROOT, None, None)
    assert (root.kind, root.start_time, root.end_time) == (SpanKind.SERVER, T0, T0 + 100 * MS)
    assert root.status.status_code is StatusCode.UNSET
    assert root.resource is RESOURCE
    assert root.instrumentation_scope == SCOPE
    assert root.context.trace_flags.sampled
    assert dict(root.attributes) == {
        **CONFIG_ATTRIBUTES,
        "http.request.method": "POST",
        "url.path": "/v1/chat/completions",
        "http.response.status_code": 200,
        "plano.request_id": "req-1",
        "plano.listener": "llm",
        "plano.api": "openai_chat",
        "llm.model": "gpt-4o-mini",
        "route.selected_model": "openai/gpt-4o-mini",
        "llm.provider": "openai",
        "llm.is_streaming": False,
        "plano.passthrough": True,
        **NEUTRAL_ONE_TURN,
    }
    assert root.events == ()
    assert ids(llm) == (TRACE, FIRST, ROOT, False)
    assert (llm.kind, llm.start_time, llm.end_time) == (SpanKind.CLIENT, T0 + MS, T0 + 90 * MS)
    assert llm.status.status_code is StatusCode.UNSET
    assert llm.events == ()
    assert dict(llm.attributes) == {
        **CONFIG_ATTRIBUTES,
        "llm.model": "openai/gpt-4o-mini",
        "llm.provider": "openai",
        "llm.outcome": "ok",
        "llm.duration_ms": 89.0,
        "llm.usage.prompt_tokens": 1000,
        "llm.usage.completion_tokens": 200,
        "llm.usage.total_tokens": 1200,
        "llm.usage.cached_input_tokens": 400,
        "llm.usage.cost_usd": analysis.cost_usd,
        "llm.usage.prompt_cost_usd": analysis.prompt_cost_usd,
        "llm.usage.completion_cost_usd": analysis.completion_cost_usd,
    }


def test_anthropic_stream_spans_join_the_client_trace() -> None:
    _, spans = analyzed(anthropic_stream())
    root, llm = spans
    assert ids(root) == (TRACE, ROOT, CLIENT_PARENT, True)
    assert root.attributes["session.id"] == "sess-42"
    assert root.attributes["llm.is_streaming"] is True
    assert root.attributes["plano.passthrough"] is False
    assert root.attributes["plano.api"] == "anthropic_messages"
    assert ids(llm) == (TRACE, FIRST, ROOT, False)
    attrs = dict(llm.attributes)
    assert attrs["llm.time_to_first_token"] == 295.0  # from the attempt's start
    assert attrs["llm.time_per_output_token_ms"] == pytest.approx(600 / 19)
    assert attrs["llm.duration_ms"] == 895.0
    assert attrs["llm.usage.reasoning_tokens"] == 0
    assert attrs["llm.usage.cached_input_tokens"] == 10
    assert [(e.name, e.timestamp, dict(e.attributes)) for e in llm.events] == [
        ("first_token", T0 + 300 * MS, {})
    ]


def test_routed_failover_spans() -> None:
    rec = routed_failover()
    analysis, spans = analyzed(rec)
    assert [s.name for s in spans] == [
        "plano(inbound)",
        "plano(routing)",
        "plano(llm)",
        "plano(llm)",
    ]
    root, routing, failed, served = spans
    assert root.status.status_code is StatusCode.UNSET
    assert ids(routing) == (TRACE, ROUTER, ROOT, False)
    assert (routing.kind, routing.start_time, routing.end_time) == (
        SpanKind.INTERNAL,
        T0 + MS,
        T0 + 13 * MS,
    )
    assert routing.status.status_code is StatusCode.UNSET
    assert dict(routing.attributes) == {
        **CONFIG_ATTRIBUTES,
        "routing.determination_ms": 12.5,
        "route.name": "code",
        "route.selected_model": "anthropic/claude-sonnet-4",
        "route.models": ("anthropic/claude-sonnet-4", "openai/gpt-4o"),
        "router.backend": "embedded",
        "router.cached": True,
        "router.pinned": False,
        "router.escalated": False,
        "router.scores": '{"code":0.91,"chat":0.2}',
    }
    assert ids(failed) == (TRACE, FIRST, ROOT, False)
    assert (failed.status.status_code, failed.status.description) == (
        StatusCode.ERROR,
        "HTTP 503",
    )
    assert dict(failed.attributes) == {
        **CONFIG_ATTRIBUTES,
        "llm.model": "anthropic/claude-sonnet-4",
        "llm.provider": "anthropic",
        "llm.outcome": "HTTP 503",
        "llm.duration_ms": 26.0,
    }
    assert failed.events == ()
    assert ids(served) == (TRACE, SECOND, ROOT, False)
    assert served.status.status_code is StatusCode.UNSET
    assert dict(served.attributes) == {
        **CONFIG_ATTRIBUTES,
        "llm.model": "openai/gpt-4o",
        "llm.provider": "openai",
        "llm.outcome": "ok",
        "llm.duration_ms": 449.0,
        "llm.usage.prompt_tokens": 30,
        "llm.usage.completion_tokens": 5,
        "llm.usage.total_tokens": 35,
        "llm.usage.cost_usd": analysis.cost_usd,
        "llm.usage.prompt_cost_usd": analysis.prompt_cost_usd,
        "llm.usage.completion_cost_usd": analysis.completion_cost_usd,
    }
    # The correction, with its snippet since capture is on, at the request's end.
    assert [(e.name, e.timestamp, dict(e.attributes)) for e in root.events] == [
        (
            "signal.correction",
            rec.end_ns,
            {
                "type": "correction",
                "group": "misalignment",
                "message_index": 2,
                "confidence": 0.9,
                "snippet": HAIKU[2]["content"],
            },
        )
    ]
    assert root.attributes["signals.count"] == 1
    assert root.attributes["signals.turn_count"] == 2


def test_router_fallback_span() -> None:
    rec = router_fallback()
    _, spans = analyzed(rec)
    (routing,) = by_name(spans, "plano(routing)")
    assert (routing.status.status_code, routing.status.description) == (
        StatusCode.ERROR,
        "router timeout",
    )
    assert dict(routing.attributes) == {
        **CONFIG_ATTRIBUTES,
        "routing.determination_ms": 50.0,
        "route.name": "none",
        "route.selected_model": "openai/gpt-4o-mini",  # the default that served
        "route.models": (),
        "router.backend": "ollama",
        "router.cached": False,
        "router.pinned": False,
        "router.escalated": False,
        "router.fallback": "router timeout",
    }
    row = request_row(rec, analyze_record(rec, signals=False, capture=False))
    assert (row.route, row.router_backend, row.routing_fallback) == (
        None,
        "ollama",
        "router timeout",
    )


def test_bad_request_spans_and_row() -> None:
    rec = bad_request()
    analysis, spans = analyzed(rec)
    assert analysis.request_messages is None  # the body did not parse
    assert analysis.response_messages is None  # an error object is not an answer
    assert analysis.cost_usd is None
    (root,) = spans
    assert root.status.status_code is StatusCode.UNSET
    assert root.attributes["http.response.status_code"] == 400
    assert "route.selected_model" not in root.attributes
    assert "llm.provider" not in root.attributes
    row = request_row(rec, analysis)
    assert (row.status, row.error, row.model, row.latency_ms) == (
        400,
        "'messages' must be a non-empty array",
        None,
        2.0,
    )


@pytest.mark.parametrize(
    ("status", "error", "code", "description"),
    [
        (200, None, StatusCode.UNSET, None),
        (404, "no such model", StatusCode.UNSET, None),
        (429, "rate limited", StatusCode.UNSET, None),
        (500, None, StatusCode.ERROR, "HTTP 500"),
        (502, "all upstreams failed", StatusCode.ERROR, "all upstreams failed"),
        (504, "upstream timeout", StatusCode.ERROR, "upstream timeout"),
        (200, "upstream stream broke", StatusCode.ERROR, "upstream stream broke"),
        (0, "client went away", StatusCode.ERROR, "client went away"),
    ],
)
def test_root_status(
    status: int, error: str | None, code: StatusCode, description: str | None
) -> None:
    _, spans = analyzed(record(status=status, error=error))
    root = spans[0]
    assert (root.status.status_code, root.status.description) == (code, description)
    assert root.attributes.get("http.response.status_code") == (status or None)


def test_upstream_error_signal_lands_on_the_root() -> None:
    rec = record(
        status=502,
        error="upstream connect error",
        request_body=b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}',
    )
    _, spans = analyzed(rec)
    assert [e.name for e in spans[0].events] == ["signal.api_error"]


def test_no_time_per_token_for_one_output_token() -> None:
    rec = anthropic_stream()
    rec.output_tokens = 1
    _, spans = analyzed(rec)
    attrs = spans[1].attributes
    assert "llm.time_per_output_token_ms" not in attrs
    assert attrs["llm.time_to_first_token"] == 295.0


def test_malformed_ids_raise_value_error() -> None:
    rec = record(span_id="not-hex")
    with pytest.raises(ValueError, match="invalid literal"):
        build_spans(rec, RecordAnalysis(), RESOURCE, SCOPE)


def test_configured_attributes_cannot_override_plano_keys() -> None:
    rec = record(attributes={"http.response.status_code": "999", "team": "a"})
    _, spans = analyzed(rec)
    assert spans[0].attributes["http.response.status_code"] == 200
    assert spans[0].attributes["team"] == "a"


ALL_RECORDS = [
    openai_json,
    anthropic_stream,
    responses_stream,
    routed_failover,
    router_fallback,
    bad_request,
]


@pytest.mark.parametrize("make", ALL_RECORDS)
def test_only_known_attribute_keys(make: Any) -> None:
    rec = make()
    _, spans = analyzed(rec)
    for span in spans:
        extra = set(span.attributes) - ALLOWED_KEYS[span.name] - set(rec.attributes)
        assert not extra, (span.name, extra)
        # Configured attributes are on every span.
        assert {k: span.attributes[k] for k in rec.attributes} == rec.attributes
        for event in span.events:
            assert set(event.attributes) <= {
                "type",
                "group",
                "message_index",
                "confidence",
                "snippet",
            }


# --- rows and the store -----------------------------------------------------------------


def test_rows_from_spans() -> None:
    _, spans = analyzed(routed_failover())
    rows, events = rows_from_spans(spans)
    assert [(r.name, r.span_id, r.parent_id, r.kind, r.status_code) for r in rows] == [
        ("plano(inbound)", ROOT, None, "server", "unset"),
        ("plano(routing)", ROUTER, ROOT, "internal", "unset"),
        ("plano(llm)", FIRST, ROOT, "client", "error"),
        ("plano(llm)", SECOND, ROOT, "client", "unset"),
    ]
    assert {r.trace_id for r in rows} == {TRACE}
    assert [(r.start_ns, r.end_ns) for r in rows] == [
        (T0, T0 + 500 * MS),
        (T0 + MS, T0 + 13 * MS),
        (T0 + 14 * MS, T0 + 40 * MS),
        (T0 + 41 * MS, T0 + 490 * MS),
    ]
    assert rows[2].status_message == "HTTP 503"
    assert rows[1].attributes["route.models"] == ["anthropic/claude-sonnet-4", "openai/gpt-4o"]
    assert type(rows[0].attributes) is dict
    assert [(e.span_id, e.trace_id, e.name, e.time_ns) for e in events] == [
        (ROOT, TRACE, "signal.correction", T0 + 500 * MS)
    ]
    assert events[0].attributes["message_index"] == 2


def test_request_row_fields() -> None:
    rec = anthropic_stream()
    analysis = analyze_record(rec, signals=True, capture=True)
    row = request_row(rec, analysis)
    assert row.trace_id == TRACE
    assert row.started_at == pytest.approx(1_750_000_000.0)
    assert (row.request_id, row.listener, row.api, row.path) == (
        "req-1",
        "llm",
        "anthropic_messages",
        "/v1/messages",
    )
    assert (row.route, row.router_backend, row.routing_fallback) == (None, None, None)
    assert (row.requested_model, row.model, row.provider) == (
        "claude-sonnet-4-5",
        "anthropic/claude-sonnet-4-5",
        "anthropic",
    )
    assert (row.status, row.error, row.latency_ms, row.ttft_ms) == (200, None, 1000.0, 300.0)
    assert (row.input_tokens, row.output_tokens, row.cached_tokens, row.reasoning_tokens) == (
        50,
        20,
        10,
        0,
    )
    assert row.cost_usd == analysis.cost_usd
    assert row.cost_usd is not None
    assert (row.stream, row.session) == (True, "sess-42")
    assert (row.signal_quality, row.signal_score, row.signal_count) == ("neutral", 60, 0)
    assert row.request_messages == analysis.request_messages
    assert row.response_messages == analysis.response_messages


def test_round_trip_through_the_trace_store(tmp_path: Path) -> None:
    items = []
    for make in ALL_RECORDS:
        rec = make()
        # Span ids are unique across the store: each record gets its own.
        n = ALL_RECORDS.index(make) + 1
        rec.trace_id = f"{n:032x}"
        rec.span_id = f"{n:02x}{rec.span_id[2:]}"
        if rec.routing is not None:
            rec.routing.span_id = f"{n:02x}{rec.routing.span_id[2:]}"
        for attempt in rec.attempts:
            attempt.span_id = f"{n:02x}{attempt.span_id[2:]}"
        analysis, spans = analyzed(rec)
        items.append((rec, analysis, spans))
    batch = store_batch(items)
    assert len(batch.requests) == len(ALL_RECORDS)
    with TraceStore.open(tmp_path / "traces.db") as store:
        store.write(batch)
        for rec, analysis, spans in items:
            detail = store.get_trace(rec.trace_id)
            assert detail is not None
            span_rows_, event_rows = rows_from_spans(spans)
            assert detail.spans == sorted(span_rows_, key=lambda r: (r.start_ns, r.span_id))
            assert [(e.span_id, e.name, e.time_ns, e.attributes) for e in detail.events] == [
                (e.span_id, e.name, e.time_ns, e.attributes) for e in event_rows
            ]
            assert [(s.type, s.message_index, s.snippet) for s in detail.signals] == [
                (s.type, s.message_index, s.snippet) for s in signal_rows(rec, analysis)
            ]
            row = request_row(rec, analysis)
            assert row.span_id == rec.span_id  # each call its own key
            assert row.outcome == rec.outcome
            assert detail.calls == [dataclasses.replace(row, trace_started_at=row.started_at)]
    failover = items[ALL_RECORDS.index(routed_failover)]
    assert [s.type for s in signal_rows(failover[0], failover[1])] == ["correction"]


def test_spans_encode_as_otlp() -> None:
    spans = [s for make in ALL_RECORDS for s in analyzed(make())[1]]
    request = encode_spans(spans)
    decoded = ExportTraceServiceRequest.FromString(request.SerializeToString())
    (resource_spans,) = decoded.resource_spans
    assert {(a.key, a.value.string_value) for a in resource_spans.resource.attributes} == {
        ("service.name", "plano")
    }
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("plano", "0.1.0")
    encoded = list(scope_spans.spans)
    assert len(encoded) == len(spans)
    anthropic_root = encoded[[s.name for s in spans].index("plano(inbound)", 2)]
    assert anthropic_root.trace_id == bytes.fromhex(TRACE)
    assert anthropic_root.span_id == bytes.fromhex(ROOT)
    assert anthropic_root.parent_span_id == bytes.fromhex(CLIENT_PARENT)
    assert anthropic_root.kind == anthropic_root.SPAN_KIND_SERVER
    assert anthropic_root.start_time_unix_nano == T0
    routing = next(s for s in encoded if s.name == "plano(routing)")
    models = next(a for a in routing.attributes if a.key == "route.models")
    assert [v.string_value for v in models.value.array_value.values] == [
        "anthropic/claude-sonnet-4",
        "openai/gpt-4o",
    ]
    failed = next(s for s in encoded if s.span_id == bytes.fromhex(FIRST) and s.status.code == 2)
    assert failed.status.message == "HTTP 503"
