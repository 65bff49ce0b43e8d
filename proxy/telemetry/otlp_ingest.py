"""OTLP/HTTP trace ingest: turn an agent's `POST /v1/traces` body into store rows.

Both encodings of the OTLP/HTTP spec are accepted: binary protobuf and OTLP/JSON. JSON is
parsed through the same protobuf message (google.protobuf.json_format) after rewriting the
one place OTLP/JSON departs from protobuf's JSON mapping: trace and span ids are hex, not
base64. Anything malformed raises `OtlpDecodeError` with a message fit to send back.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from proxy.telemetry.store_rows import SpanEventRow, SpanRow, StoreBatch

__all__ = [
    "MAX_BODY_BYTES",
    "OtlpDecodeError",
    "decode_export_request",
    "error_response",
    "export_response",
]

# After decompression: a few KiB of gzip can inflate to gigabytes.
MAX_BODY_BYTES = 16 * 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = frozenset({PROTOBUF, "application/protobuf"})
_INVALID_ARGUMENT = 3  # google.rpc.Code
_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUSES = {0: "unset", 1: "ok", 2: "error"}
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
# OTLP/JSON field names that hold hex ids, in both spellings ParseDict accepts.
_SPAN_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_LINK_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id")


class OtlpDecodeError(ValueError):
    """The request cannot be ingested; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def decode_export_request(
    body: bytes, content_type: str | None, content_encoding: str | None = None
) -> StoreBatch:
    """The spans and span events of one OTLP/HTTP export request."""
    media = _media_type(content_type)
    if media not in _PROTOBUF_TYPES and media != JSON:
        raise OtlpDecodeError(
            f"unsupported Content-Type {content_type!r}: send {PROTOBUF} or {JSON}", 415
        )
    data = _decompress(body, content_encoding)
    request = _parse_protobuf(data) if media in _PROTOBUF_TYPES else _parse_json(data)
    return _to_batch(request)


def export_response(content_type: str | None) -> tuple[bytes, str]:
    """The success body (an empty ExportTraceServiceResponse) and its Content-Type."""
    if _is_protobuf(content_type):
        return ExportTraceServiceResponse().SerializeToString(), PROTOBUF
    return b"{}", JSON


def error_response(content_type: str | None, message: str) -> tuple[bytes, str]:
    """A google.rpc.Status body, as the OTLP/HTTP spec asks of a failed request."""
    if _is_protobuf(content_type):
        return _status_protobuf(message), PROTOBUF
    return orjson.dumps({"code": _INVALID_ARGUMENT, "message": message}), JSON


# -- transport -------------------------------------------------------------------------


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_protobuf(content_type: str | None) -> bool:
    return _media_type(content_type) in _PROTOBUF_TYPES


def _decompress(body: bytes, content_encoding: str | None) -> bytes:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        # 16 + MAX_WBITS: a gzip header and trailer around the deflate stream.
        data = _inflate(body, 16 + zlib.MAX_WBITS, "gzip")
    elif encoding == "deflate":
        data = _inflate(body, zlib.MAX_WBITS, "deflate")
    elif encoding in ("identity", ""):
        data = body
    else:
        raise OtlpDecodeError(
            f"unsupported Content-Encoding {content_encoding!r}: send gzip, deflate or none", 415
        )
    if len(data) > MAX_BODY_BYTES:
        raise _too_large()
    return data


def _inflate(body: bytes, wbits: int, name: str) -> bytes:
    """Decompress without ever holding more than MAX_BODY_BYTES + 1 bytes of output."""
    out = bytearray()
    rest = body
    try:
        # A gzip body may be several members back to back; each needs its own decompressor.
        while rest:
            inflater = zlib.decompressobj(wbits)
            out += inflater.decompress(rest, MAX_BODY_BYTES + 1 - len(out))
            if len(out) > MAX_BODY_BYTES:
                raise _too_large()
            if not inflater.eof:
                raise OtlpDecodeError(f"the {name} body is truncated")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise OtlpDecodeError(f"the body is not valid {name}: {exc}") from None
    return bytes(out)


def _too_large() -> OtlpDecodeError:
    return OtlpDecodeError(
        f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB uncompressed;"
        " export smaller batches",
        413,
    )


# -- parsing ---------------------------------------------------------------------------


def _parse_protobuf(data: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except DecodeError as exc:
        raise OtlpDecodeError(f"the body is not a valid OTLP protobuf request: {exc}") from None
    return request


def _parse_json(data: bytes) -> ExportTraceServiceRequest:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("an OTLP/JSON request must be a JSON object with resourceSpans")
    _hex_ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        # The spec asks receivers to ignore unknown fields (forward compatibility).
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpDecodeError(f"the body is not a valid OTLP/JSON request: {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        # json_format lets a few of these escape on oddly shaped input.
        raise OtlpDecodeError(f"the body is not a valid OTLP/JSON request: {exc}") from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite OTLP/JSON's hex ids in place into the base64 that ParseDict expects.

    A value that is not hex is left alone: an exporter that wrongly sends base64 then
    still decodes, and anything else fails the length check in `_to_batch`.
    """
    for resource_spans in _children(document, "resourceSpans", "resource_spans"):
        for scope_spans in _children(resource_spans, "scopeSpans", "scope_spans"):
            for span in _children(scope_spans, "spans"):
                _rewrite_ids(span, _SPAN_ID_FIELDS)
                for link in _children(span, "links"):
                    _rewrite_ids(link, _LINK_ID_FIELDS)


def _children(node: Any, *names: str) -> Iterable[Any]:
    # Wrong shapes are skipped here and reported by ParseDict with its field path.
    if not isinstance(node, dict):
        return ()
    for name in names:
        value = node.get(name)
        if isinstance(value, list):
            return value
    return ()


def _rewrite_ids(node: Any, names: tuple[str, ...]) -> None:
    if not isinstance(node, dict):
        return
    for name in names:
        value = node.get(name)
        if not isinstance(value, str) or not value:
            continue
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            continue
        node[name] = base64.b64encode(raw).decode("ascii")


# -- conversion ------------------------------------------------------------------------


def _to_batch(request: ExportTraceServiceRequest) -> StoreBatch:
    batch = StoreBatch()
    for resource_spans in request.resource_spans:
        service = _service_name(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id = _hex_id(span.trace_id, _TRACE_ID_BYTES, "traceId", span.name)
                span_id = _hex_id(span.span_id, _SPAN_ID_BYTES, "spanId", span.name)
                parent_id = (
                    _hex_id(span.parent_span_id, _SPAN_ID_BYTES, "parentSpanId", span.name)
                    if span.parent_span_id
                    else None
                )
                attributes = _attributes(span.attributes)
                if service is not None:
                    # The resource says which agent sent the span; the store has no
                    # resource column, so it travels with the span.
                    attributes["service.name"] = service
                batch.spans.append(
                    SpanRow(
                        span_id=span_id,
                        trace_id=trace_id,
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano or None,
                        parent_id=parent_id,
                        kind=_KINDS.get(span.kind),
                        status_code=_STATUSES.get(span.status.code, "unset"),
                        status_message=span.status.message or None,
                        attributes=attributes,
                    )
                )
                batch.events.extend(
                    SpanEventRow(
                        span_id=span_id,
                        trace_id=trace_id,
                        name=event.name,
                        time_ns=event.time_unix_nano,
                        attributes=_attributes(event.attributes),
                    )
                    for event in span.events
                )
    return batch


def _hex_id(raw: bytes, size: int, field: str, span_name: str) -> str:
    if len(raw) != size or not any(raw):
        got = "empty" if not raw else ("all zeros" if not any(raw) else f"{len(raw)} bytes")
        raise OtlpDecodeError(
            f"span {span_name!r}: {field} must be {size} bytes ({size * 2} hex digits)"
            f" and not all zeros, got {got}"
        )
    return raw.hex()


def _service_name(attributes: Iterable[KeyValue]) -> str | None:
    for item in attributes:
        if item.key == "service.name":
            value = _value(item.value)
            return None if value is None else str(value)
    return None


def _attributes(items: Iterable[KeyValue]) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if which == "bytes_value":
        return value.bytes_value.hex()
    # Unset, or an index into a dictionary that only OTLP profiles carry.
    return None


def _status_protobuf(message: str) -> bytes:
    # googleapis-common-protos comes with the OTLP exporters, not with opentelemetry-proto.
    try:
        from google.rpc.status_pb2 import Status
    except ImportError:
        # Encode the two scalar fields by hand: field 1 varint code, field 2 the message.
        text = message.encode("utf-8")
        return bytes([0x08, _INVALID_ARGUMENT, 0x12]) + _varint(len(text)) + text
    return Status(code=_INVALID_ARGUMENT, message=message).SerializeToString()


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
