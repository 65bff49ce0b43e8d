"""What an upstream (a provider or an agent) did, in words fit for a client and a log."""

from __future__ import annotations

import aiohttp
import orjson

from proxy.config.redact import redact_text


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response was cut off"
    return redact_text(str(exc) or type(exc).__name__)


def upstream_message(raw: bytes) -> str | None:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:300].decode("utf-8", errors="replace").strip() or None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return None
