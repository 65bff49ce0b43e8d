"""OTLP in and out: agents' spans decoded into store rows, Plano's spans sent to a collector.

Payloads come from the real OpenTelemetry SDK and its real exporters. The only stand-in is
the gRPC collector: a TraceService servicer on loopback, as no collector binary is here.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import orjson
import pytest
from aiohttp import web
from google.protobuf import json_format
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from proxy.telemetry import otlp_ingest
from proxy.telemetry.otlp_export import describe_exporter, exporter_for, otlp_target
from proxy.telemetry.otlp_ingest import (
    OtlpDecodeError,
    decode_export_request,
    error_response,
    export_response,
)
from proxy.telemetry.store_rows import SpanEventRow, SpanRow, StoreBatch

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SERVICE = "research-agent"
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporters read os.environ themselves: keep the developer's OTEL_* out, and bound
    every export so a broken path fails in seconds instead of hanging."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5")


# -- spans from the real SDK -----------------------------------------------------------


def record_spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("tests.otlp", "1.0")
    with tracer.start_as_current_span(
        "agent.run",
        kind=SpanKind.SERVER,
        attributes={
            "gen_ai.request.model": "gpt-4o",
            "retry": True,
            "attempt": 2,
            "temperature": 0.5,
            "tools": ["search", "fetch"],
            "shards": [1, 2, 3],
        },
    ) as parent:
        parent.add_event("tool.call", {"tool": "search", "results": 3})
        with tracer.start_as_current_span("llm.call", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "upstream returned 500"))
        parent.set_status(Status(StatusCode.OK))


def sdk_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    record_spans(provider)
    provider.shutdown()
    return list(memory.get_finished_spans())


def hex_trace(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


def hex_span(span_id: int) -> str:
    return format(span_id, "016x")


def assert_rows_match(batch: StoreBatch, spans: list[ReadableSpan]) -> None:
    by_name = {span.name: span for span in spans}
    assert sorted(row.name for row in batch.spans) == sorted(by_name)
    rows = {row.name: row for row in batch.spans}

    parent, child = by_name["agent.run"], by_name["llm.call"]
    assert rows["agent.run"] == SpanRow(
        span_id=hex_span(parent.context.span_id),
        trace_id=hex_trace(parent),
        name="agent.run",
        start_ns=parent.start_time,
        end_ns=parent.end_time,
        parent_id=None,
        kind="server",
        status_code="ok",
        status_message=None,
        attributes={
            "gen_ai.request.model": "gpt-4o",
            "retry": True,
            "attempt": 2,
            "temperature": 0.5,
            "tools": ["search", "fetch"],
            "shards": [1, 2, 3],
            "service.name": SERVICE,
        },
    )
    assert rows["llm.call"] == SpanRow(
        span_id=hex_span(child.context.span_id),
        trace_id=hex_trace(parent),
        name="llm.call",
        start_ns=child.start_time,
        end_ns=child.end_time,
        parent_id=hex_span(parent.context.span_id),
        kind="client",
        status_code="error",
        status_message="upstream returned 500",
        attributes={"service.name": SERVICE},
    )
    assert batch.events == [
        SpanEventRow(
            span_id=hex_span(parent.context.span_id),
            trace_id=hex_trace(parent),
            name="tool.call",
            time_ns=parent.events[0].timestamp,
            attributes={"tool": "search", "results": 3},
        )
    ]
    assert batch.requests == []
    assert batch.signals == []


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the spec writes it: hex ids, integer enums, int64 as strings."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return orjson.dumps(document)


# -- decoding --------------------------------------------------------------------------


def test_decodes_sdk_protobuf() -> None:
    spans = sdk_spans()
    body = encode_spans(spans).SerializeToString()
    assert_rows_match(decode_export_request(body, PROTOBUF), spans)


def test_decodes_sdk_spans_as_otlp_json() -> None:
    spans = sdk_spans()
    body = to_otlp_json(encode_spans(spans))
    assert b'"kind":2' in body  # the integer enums the spec asks for
    assert_rows_match(decode_export_request(body, "application/json; charset=utf-8"), spans)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("GZIP", gzip.compress), ("deflate", zlib.compress)],
)
@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_decodes_compressed_bodies(encoding: str, compress: Any, content_type: str) -> None:
    spans = sdk_spans()
    request = encode_spans(spans)
    raw = request.SerializeToString() if content_type == PROTOBUF else to_otlp_json(request)
    assert_rows_match(decode_export_request(compress(raw), content_type, encoding), spans)


def test_decodes_multi_member_gzip() -> None:
    spans = sdk_spans()
    raw = encode_spans(spans).SerializeToString()
    # Protobuf messages concatenate; so do gzip members: this is the same request.
    body = gzip.compress(raw[:10]) + gzip.compress(raw[10:])
    assert_rows_match(decode_export_request(body, PROTOBUF, "gzip"), spans)


HAND_WRITTEN_JSON = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "billing"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "my.library", "version": "1.0.0"},
                    "spans": [
                        {
                            "traceId": "5B8EFFF798038103D269B633813FC60C",
                            "spanId": "EEE19B7EC3C1B174",
                            "parentSpanId": "EEE19B7EC3C1B173",
                            "name": "charge",
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": 1544712661000000000,
                            "kind": 3,
                            "attributes": [
                                {"key": "s", "value": {"stringValue": "text"}},
                                {"key": "i", "value": {"intValue": "9007199254740993"}},
                                {"key": "d", "value": {"doubleValue": 1.5}},
                                {"key": "b", "value": {"boolValue": False}},
                                {"key": "raw", "value": {"bytesValue": "AQL/"}},
                                {
                                    "key": "list",
                                    "value": {
                                        "arrayValue": {
                                            "values": [{"stringValue": "a"}, {"intValue": 1}]
                                        }
                                    },
                                },
                                {
                                    "key": "map",
                                    "value": {
                                        "kvlistValue": {
                                            "values": [
                                                {"key": "k", "value": {"stringValue": "v"}},
                                                {"key": "empty", "value": {}},
                                            ]
                                        }
                                    },
                                },
                            ],
                            "events": [
                                {
                                    "timeUnixNano": "1544712660500000000",
                                    "name": "retry",
                                    "attributes": [{"key": "n", "value": {"intValue": 1}}],
                                }
                            ],
                            "links": [
                                {
                                    "traceId": "0102030405060708090a0b0c0d0e0f10",
                                    "spanId": "0102030405060708",
                                }
                            ],
                            "status": {"code": 2, "message": "card declined"},
                            "someFutureField": {"ignored": True},
                        },
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b173",
                            "name": "checkout",
                            "startTimeUnixNano": 1544712659000000000,
                            "kind": "SPAN_KIND_INTERNAL",
                        },
                    ],
                }
            ],
        }
    ]
}


def test_decodes_hand_written_otlp_json() -> None:
    batch = decode_export_request(orjson.dumps(HAND_WRITTEN_JSON), JSON)
    charge, checkout = batch.spans
    assert charge == SpanRow(
        span_id="eee19b7ec3c1b174",
        trace_id="5b8efff798038103d269b633813fc60c",
        name="charge",
        start_ns=1544712660000000000,
        end_ns=1544712661000000000,
        parent_id="eee19b7ec3c1b173",
        kind="client",
        status_code="error",
        status_message="card declined",
        attributes={
            "s": "text",
            "i": 9007199254740993,  # beyond a double's precision: kept exact
            "d": 1.5,
            "b": False,
            "raw": "0102ff",
            "list": ["a", 1],
            "map": {"k": "v", "empty": None},
            "service.name": "billing",
        },
    )
    # An open span: no end time, no status; enum names are accepted as well as numbers.
    assert (checkout.end_ns, checkout.kind, checkout.status_code) == (None, "internal", "unset")
    assert batch.events == [
        SpanEventRow(
            span_id="eee19b7ec3c1b174",
            trace_id="5b8efff798038103d269b633813fc60c",
            name="retry",
            time_ns=1544712660500000000,
            attributes={"n": 1},
        )
    ]


def test_empty_request_is_valid() -> None:
    assert decode_export_request(b"", PROTOBUF) == StoreBatch()
    assert decode_export_request(b"{}", JSON) == StoreBatch()


def _json_span(**fields: Any) -> bytes:
    span = {"traceId": "01" * 16, "spanId": "02" * 8, "name": "s", **fields}
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


def _protobuf_span(**fields: Any) -> bytes:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="s", **fields)
    return request.SerializeToString()


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "status", "words"),
    [
        (b"\xff\xff\xff\xff", PROTOBUF, None, 400, "protobuf"),
        (b"{not json", JSON, None, 400, "not valid JSON"),
        (b"[]", JSON, None, 400, "JSON object"),
        (b'{"resourceSpans": "nope"}', JSON, None, 400, "OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}', JSON, None, 400, "OTLP/JSON"),
        (_json_span(traceId="not hex!"), JSON, None, 400, "traceId must be"),
        (_json_span(traceId="abcd"), JSON, None, 400, "traceId must be 16 bytes"),
        (_json_span(spanId="00" * 8), JSON, None, 400, "all zeros"),
        (_json_span(startTimeUnixNano="soon"), JSON, None, 400, "OTLP/JSON"),
        (_json_span(kind={"a": 1}), JSON, None, 400, "OTLP/JSON"),
        (_protobuf_span(), PROTOBUF, None, 400, "traceId must be 16 bytes"),
        (_protobuf_span(trace_id=b"\1" * 16, span_id=b"\2" * 4), PROTOBUF, None, 400, "spanId"),
        (
            _protobuf_span(trace_id=b"\1" * 16, span_id=b"\2" * 8, parent_span_id=b"\3"),
            PROTOBUF,
            None,
            400,
            "parentSpanId",
        ),
        (b"not gzip", PROTOBUF, "gzip", 400, "not valid gzip"),
        (gzip.compress(b"x" * 1000)[:-12], PROTOBUF, "gzip", 400, "truncated"),
        (gzip.compress(b"") + b"trailing junk", PROTOBUF, "gzip", 400, "not valid gzip"),
        (b"{}", "text/plain", None, 415, "Content-Type"),
        (b"{}", None, None, 415, "Content-Type"),
        (b"{}", JSON, "br", 415, "Content-Encoding"),
    ],
)
def test_rejects_malformed_requests(
    body: bytes, content_type: str | None, encoding: str | None, status: int, words: str
) -> None:
    with pytest.raises(OtlpDecodeError) as caught:
        decode_export_request(body, content_type, encoding)
    assert words in caught.value.message
    assert caught.value.status == status
    assert "Traceback" not in caught.value.message


@pytest.mark.parametrize(
    ("make_body", "encoding"),
    [
        (lambda: gzip.compress(b"\0" * (17 * MIB), 9), "gzip"),
        # No single member is too big; together they are.
        (lambda: gzip.compress(b"\0" * (9 * MIB), 9) * 2, "gzip"),
        (lambda: zlib.compress(b"\0" * (17 * MIB), 9), "deflate"),
        (lambda: b"\0" * (16 * MIB + 1), None),
    ],
    ids=["gzip-bomb", "gzip-members", "deflate-bomb", "plain"],
)
def test_rejects_bodies_over_16_mib(make_body: Any, encoding: str | None) -> None:
    body = make_body()
    assert len(body) < 17 * MIB  # what arrives on the wire is small; what it inflates to is not
    with pytest.raises(OtlpDecodeError) as caught:
        decode_export_request(body, PROTOBUF, encoding)
    assert caught.value.status == 413
    assert "16 MiB" in caught.value.message


# -- responses -------------------------------------------------------------------------


def test_export_response() -> None:
    body, content_type = export_response(PROTOBUF)
    assert content_type == PROTOBUF
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    assert export_response("application/json; charset=utf-8") == (b"{}", JSON)


MESSAGE = "spanId must be 8 bytes — " + "x" * 200  # > 127 bytes: a two-byte length


def test_error_response() -> None:
    body, content_type = error_response(PROTOBUF, MESSAGE)
    assert content_type == PROTOBUF
    status = RpcStatus.FromString(body)
    assert (status.code, status.message) == (3, MESSAGE)
    body, content_type = error_response(JSON, MESSAGE)
    assert content_type == JSON
    assert orjson.loads(body) == {"code": 3, "message": MESSAGE}


def test_error_response_without_googleapis_protos(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = RpcStatus(code=3, message=MESSAGE).SerializeToString()
    monkeypatch.setitem(sys.modules, "google.rpc.status_pb2", None)  # import now fails
    assert otlp_ingest.error_response(PROTOBUF, MESSAGE) == (expected, PROTOBUF)


# -- the HTTP exporter end to end ------------------------------------------------------


class HttpCollector:
    """Plano's ingest endpoint in miniature: decode, answer as the OTLP/HTTP spec says."""

    def __init__(self) -> None:
        self.batches: list[StoreBatch] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type")
        self.headers.append(dict(request.headers))
        try:
            batch = decode_export_request(
                body, content_type, request.headers.get("Content-Encoding")
            )
        except OtlpDecodeError as exc:
            payload, reply_type = error_response(content_type, exc.message)
            return web.Response(status=exc.status, body=payload, content_type=reply_type)
        self.batches.append(batch)
        payload, reply_type = export_response(content_type)
        return web.Response(body=payload, content_type=reply_type)


@pytest.fixture
async def http_collector() -> AsyncIterator[HttpCollector]:
    collector = HttpCollector()
    app = web.Application()
    app.router.add_post("/v1/traces", collector.handle)
    # aiohttp inflates gzip bodies itself by default and leaves Content-Encoding in place;
    # the decoder must see the body as sent, and enforce its own size limit.
    runner = web.AppRunner(app, auto_decompress=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    collector.url = f"http://{host}:{port}"
    yield collector
    await runner.cleanup()


async def export_through(exporter: Any) -> list[ReadableSpan]:
    """Record spans with a BatchSpanProcessor on `exporter`; flush off the event loop, as
    the HTTP exporter blocks in `requests` while the server needs this loop to answer."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    record_spans(provider)
    assert await asyncio.to_thread(provider.force_flush, 10_000)
    await asyncio.to_thread(provider.shutdown)
    return list(memory.get_finished_spans())


def merged(batches: list[StoreBatch]) -> StoreBatch:
    out = StoreBatch()
    for batch in batches:
        out.spans += batch.spans
        out.events += batch.events
    return out


async def test_http_exporter_delivers_to_ingest(http_collector: HttpCollector) -> None:
    exporter = exporter_for(None, env={"OTEL_EXPORTER_OTLP_ENDPOINT": http_collector.url})
    assert isinstance(exporter, HttpSpanExporter)
    spans = await export_through(exporter)
    batch = merged(http_collector.batches)
    assert_rows_match(batch, spans)
    assert {row.trace_id for row in batch.spans} == {hex_trace(spans[0])}
    assert http_collector.headers[0]["Content-Type"] == PROTOBUF


async def test_http_exporter_gzip_and_headers_from_env(
    http_collector: HttpCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compression is read by the exporter from the process environment, not from `env`.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{http_collector.url}/v1/traces",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20t0ken,x-team=blue",
    }
    spans = await export_through(exporter_for(None, env=env))
    assert_rows_match(merged(http_collector.batches), spans)
    sent = http_collector.headers[0]
    assert sent["Content-Encoding"] == "gzip"
    assert (sent["Authorization"], sent["x-team"]) == ("Bearer t0ken", "blue")


# -- the gRPC exporter against a stand-in collector ------------------------------------


class GrpcCollector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.metadata: list[dict[str, str]] = []
        self.port = 0

    def Export(self, request: ExportTraceServiceRequest, context: Any) -> Any:
        self.requests.append(request)
        self.metadata.append(dict(context.invocation_metadata()))
        return ExportTraceServiceResponse()


@pytest.fixture
def grpc_collector() -> Iterator[GrpcCollector]:
    collector = GrpcCollector()
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    collector.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield collector
    server.stop(grace=None)


def grpc_export(exporter: Any, collector: GrpcCollector) -> None:
    assert isinstance(exporter, GrpcSpanExporter)
    spans = sdk_spans()
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    bodies = [request.SerializeToString() for request in collector.requests]
    assert_rows_match(decode_export_request(b"".join(bodies), PROTOBUF), spans)


# grpc:// is plaintext too: dialled with TLS, a plaintext collector would never answer.
@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_config_endpoint_exports_over_grpc(scheme: str, grpc_collector: GrpcCollector) -> None:
    endpoint = f"{scheme}://127.0.0.1:{grpc_collector.port}"
    grpc_export(exporter_for(endpoint, env={}), grpc_collector)


def test_env_grpc_protocol_with_headers(grpc_collector: GrpcCollector) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_collector.port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-api-key=k3y",
    }
    grpc_export(exporter_for(None, env=env), grpc_collector)
    assert grpc_collector.metadata[0]["x-api-key"] == "k3y"


# -- choosing the exporter -------------------------------------------------------------


ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"


@pytest.mark.parametrize(
    ("grpc_endpoint", "env", "expected"),
    [
        (None, {}, None),
        (None, {ENDPOINT: ""}, None),
        # Plano's own setting wins over the environment.
        ("http://c:4317", {ENDPOINT: "http://x:4318"}, ("grpc", "http://c:4317")),
        (None, {ENDPOINT: "http://c:4318"}, ("http/protobuf", "http://c:4318/v1/traces")),
        (None, {ENDPOINT: "http://c:4318/"}, ("http/protobuf", "http://c:4318/v1/traces")),
        (
            None,
            {ENDPOINT: "http://x:4318", TRACES_ENDPOINT: "http://c:4318/custom"},
            ("http/protobuf", "http://c:4318/custom"),
        ),
        (None, {ENDPOINT: "http://c:4317", PROTOCOL: "grpc"}, ("grpc", "http://c:4317")),
        (
            None,
            {ENDPOINT: "http://c:4318", PROTOCOL: "grpc", TRACES_PROTOCOL: "http/protobuf"},
            ("http/protobuf", "http://c:4318/v1/traces"),
        ),
    ],
)
def test_otlp_target(
    grpc_endpoint: str | None, env: dict[str, str], expected: tuple[str, str] | None
) -> None:
    target = otlp_target(grpc_endpoint, env)
    assert (target and (target.protocol, target.endpoint)) == expected


@pytest.mark.parametrize(
    ("endpoint", "insecure"),
    [("http://c:4317", True), ("grpc://c:4317", True), ("https://c:4317", False)],
)
def test_config_endpoint_security(endpoint: str, insecure: bool) -> None:
    target = otlp_target(endpoint, {})
    assert target is not None
    assert target.insecure is insecure


@pytest.mark.parametrize("protocol", ["http/json", "carrier-pigeon"])
def test_unsupported_protocols_fall_back_to_http_protobuf(protocol: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
    target = otlp_target(None, env)
    assert target is not None
    assert target.protocol == "http/protobuf"
    assert "http/protobuf" in describe_exporter(None, env)


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c/base/"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom/path"},
    ],
)
def test_http_endpoint_matches_the_sdks_own_resolution(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    target = otlp_target(None, env)
    assert target is not None
    assert target.endpoint == HttpSpanExporter()._endpoint


# -- the startup banner ----------------------------------------------------------------


SECRETS = ("alice", "s3cret", "bob", "pw", "k3y", "t0ken", "frag")


@pytest.mark.parametrize(
    ("grpc_endpoint", "env", "shown"),
    [
        ("http://alice:s3cret@collector:4317", {}, "OTLP/gRPC to http://collector:4317"),
        (
            None,
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://bob:pw@api.example.com/v1/traces"
                "?api_key=k3y#frag",
                "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20t0ken",
            },
            "OTLP/HTTP to https://api.example.com/v1/traces?<redacted>",
        ),
        (
            None,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "alice:s3cret@collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            "OTLP/gRPC to collector:4317",
        ),
    ],
)
def test_describe_exporter_redacts(
    grpc_endpoint: str | None, env: dict[str, str], shown: str
) -> None:
    line = describe_exporter(grpc_endpoint, env)
    assert line.startswith(shown)
    for secret in SECRETS:
        assert secret not in line
    assert "\n" not in line


def test_describe_exporter_details() -> None:
    assert describe_exporter(None, {}) == "OTLP export off"
    line = describe_exporter(
        "grpc://collector:4317", {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=x"}
    )
    assert line == (
        "OTLP/gRPC to grpc://collector:4317 (from tracing.opentracing_grpc_endpoint;"
        " plaintext; headers: authorization)"
    )
