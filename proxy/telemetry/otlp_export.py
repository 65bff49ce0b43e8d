"""Which OTLP exporter, if any, sends Plano's spans to a collector.

Plano's own setting wins: `tracing.opentracing_grpc_endpoint` is an OTLP/gRPC collector.
Otherwise the standard OpenTelemetry variables choose, as any OTel SDK would.

`env` decides where spans go (endpoint, protocol) and which headers go with them, so a
`.env` beside the config can carry a collector's API key. Timeout, compression and TLS
files are left to the exporters, which read them from the process environment only.
The exporter modules are imported on first use: they cost 150-250 ms.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["OtlpTarget", "describe_exporter", "exporter_for", "otlp_target"]

CONFIG_KEY = "tracing.opentracing_grpc_endpoint"
TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
TRACES_HEADERS = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
TRACES_INSECURE = "OTEL_EXPORTER_OTLP_TRACES_INSECURE"
INSECURE = "OTEL_EXPORTER_OTLP_INSECURE"
HTTP_TRACES_PATH = "v1/traces"
_PLAINTEXT_SCHEMES = frozenset({"http", "grpc"})

Protocol = Literal["grpc", "http/protobuf"]


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    protocol: Protocol
    endpoint: str
    source: str  # the config key or environment variable the endpoint came from
    # gRPC only; None leaves it to the exporter (https is TLS, http is not).
    insecure: bool | None = None
    # Parsed from `env`; None lets the exporter read the process environment.
    headers: dict[str, str] | None = None
    note: str | None = None  # a setting that was not honoured as written


def otlp_target(
    grpc_endpoint: str | None, env: Mapping[str, str] = os.environ
) -> OtlpTarget | None:
    """Where spans would be exported, or None when nothing asks for an export."""
    headers = _headers(env)
    if grpc_endpoint:
        scheme = _scheme(grpc_endpoint)
        # The gRPC exporter itself only treats http:// as plaintext; Plano's config also
        # accepts grpc://, which it would otherwise dial with TLS.
        return OtlpTarget(
            "grpc",
            grpc_endpoint,
            CONFIG_KEY,
            insecure=scheme in _PLAINTEXT_SCHEMES,
            headers=headers,
        )
    source = TRACES_ENDPOINT if env.get(TRACES_ENDPOINT) else ENDPOINT
    endpoint = env.get(source)
    if not endpoint:
        return None
    protocol, note = _protocol(env)
    if protocol == "grpc":
        return OtlpTarget(
            "grpc", endpoint, source, insecure=_insecure(env), headers=headers, note=note
        )
    if source == ENDPOINT:
        # The generic variable is a base URL; the per-signal one is used as written.
        endpoint = f"{endpoint.removesuffix('/')}/{HTTP_TRACES_PATH}"
    return OtlpTarget("http/protobuf", endpoint, source, headers=headers, note=note)


def exporter_for(
    grpc_endpoint: str | None, env: Mapping[str, str] = os.environ
) -> SpanExporter | None:
    """An OTLP span exporter for Plano's config and environment, or None for no export."""
    target = otlp_target(grpc_endpoint, env)
    if target is None:
        return None
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(
            endpoint=target.endpoint, insecure=target.insecure, headers=target.headers
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    # Passed explicitly: the exporter would read the endpoint from os.environ, not `env`.
    return HttpSpanExporter(endpoint=target.endpoint, headers=target.headers)


def describe_exporter(grpc_endpoint: str | None, env: Mapping[str, str] = os.environ) -> str:
    """One line for the startup banner; never shows userinfo, query strings or header values."""
    target = otlp_target(grpc_endpoint, env)
    if target is None:
        return "OTLP export off"
    transport = "gRPC" if target.protocol == "grpc" else "HTTP"
    details = [f"from {target.source}"]
    if target.insecure:
        details.append("plaintext")
    if target.headers:
        details.append("headers: " + ", ".join(sorted(target.headers)))
    if target.note:
        details.append(target.note)
    return f"OTLP/{transport} to {redact_endpoint(target.endpoint)} ({'; '.join(details)})"


def redact_endpoint(url: str) -> str:
    """scheme://host:port/path only: userinfo and query may hold credentials."""
    # Without "//" urlsplit reads "user:pw@host:4317" as scheme "user" and keeps the rest.
    text = url if "://" in url else f"//{url}"
    try:
        parts = urlsplit(text)
    except ValueError:
        return "<unparsable endpoint>"
    host = parts.netloc.rpartition("@")[2]
    shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
    if parts.query or parts.fragment:
        shown += "?<redacted>"
    return shown.removeprefix("//")


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def _protocol(env: Mapping[str, str]) -> tuple[Protocol, str | None]:
    raw = (env.get(TRACES_PROTOCOL) or env.get(PROTOCOL) or "http/protobuf").strip().lower()
    if raw == "grpc":
        return "grpc", None
    if raw == "http/protobuf":
        return "http/protobuf", None
    if raw == "http/json":
        return "http/protobuf", "http/json is not supported by the Python exporter: http/protobuf"
    # The OTel spec: an unknown value is warned about and the default used.
    return "http/protobuf", f"unknown protocol {raw!r}: http/protobuf"


def _headers(env: Mapping[str, str]) -> dict[str, str] | None:
    raw = env.get(TRACES_HEADERS) or env.get(HEADERS)
    if not raw:
        return None
    # The SDK's own parser, so `env` reads exactly as the process environment would.
    from opentelemetry.util.re import parse_env_headers

    return parse_env_headers(raw, liberal=True) or None


def _insecure(env: Mapping[str, str]) -> bool | None:
    raw = env.get(TRACES_INSECURE) or env.get(INSECURE)
    return raw.strip().lower() == "true" if raw else None
