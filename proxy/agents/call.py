"""One HTTP call to an agent: where it goes, the headers it gets, and how it can fail.

An agent is a plain HTTP server speaking Chat Completions. A call that cannot connect is
tried again (nothing reached the agent); a call that reached it is never repeated, since
an agent may act on what it is asked. Every failure becomes an `AgentFailure` that names
the agent and what it did, for the client's error and the trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from proxy.config.model import Agent
from proxy.config.redact import redact_text, redact_url
from proxy.upstream.errors import describe, upstream_message
from proxy.upstream.retry import Backoff

CHAT_PATH = "/v1/chat/completions"
UPSTREAM_HEADER = "x-arch-upstream"  # upstream's name for "which agent this call is for"
_MAX_ERROR_BODY = 64 * 1024
# Never forwarded from the client: hop-by-hop headers (RFC 9110 7.6.1), what the HTTP client
# sets for the new body, and what Plano sets per call.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        # The body is made anew (and sent uncompressed), whatever coding the client's had.
        "content-encoding",
        "expect",
        "traceparent",
        "x-request-id",
        UPSTREAM_HEADER,
    }
)


@dataclass(frozen=True, slots=True)
class AgentTarget:
    id: str
    url: str  # the full chat completions URL

    @classmethod
    def of(cls, agent: Agent) -> AgentTarget:
        return cls(agent.id, chat_url(agent.url))


def chat_url(base: str) -> str:
    """Upstream posts to the agent's host:port + /v1/chat/completions. A path in the URL is
    kept as a prefix (upstream drops it), and a URL already ending in the chat path is used
    as it is."""
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        return f"{parts.scheme}://{parts.netloc}{path}"
    return f"{parts.scheme}://{parts.netloc}{path}{CHAT_PATH}"


def forwarded_headers(
    client: Mapping[str, str], request_id: str, dropped: Iterable[str] = ()
) -> dict[str, str]:
    """The client's headers as every agent of the request gets them (upstream forwards the
    client's headers), plus `x-request-id`; traceparent and x-arch-upstream are per call.
    `dropped`: more headers not to forward (those holding the client's key to Plano)."""
    dropped = set(_NOT_FORWARDED) | set(dropped)
    # Connection may name more hop-by-hop headers of this one hop.
    for name in client.get("connection", "").split(","):
        dropped.add(name.strip().lower())
    headers = {name: value for name, value in client.items() if name.lower() not in dropped}
    headers["Content-Type"] = "application/json"
    headers["x-request-id"] = request_id
    return headers


class AgentFailure(Exception):
    """An agent call that produced no usable answer."""

    def __init__(self, status: int, outcome: str, message: str):
        super().__init__(message)
        self.status = status  # what the client gets
        self.outcome = outcome  # for the trace and metrics: "HTTP 500", "timeout", ...
        self.message = message


async def open_call(
    session: aiohttp.ClientSession,
    target: AgentTarget,
    payload: bytes,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
    retries: int,
    backoff: Backoff,
) -> aiohttp.ClientResponse:
    """POST to the agent; its response once it answered 2xx (the body is still to read)."""
    attempt = 0
    while True:
        try:
            response = await session.post(
                target.url, data=payload, headers=headers, timeout=timeout
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # The request never reached the agent: trying again cannot do anything twice.
            attempt += 1
            delay = backoff.delay(attempt) if attempt <= retries else None
            if delay is None:
                raise AgentFailure(
                    502,
                    "connect error",
                    f"agent '{target.id}' at {redact_url(target.url)}: {describe(exc)}",
                ) from None
            await asyncio.sleep(delay)
            continue
        except TimeoutError:
            raise timed_out(target, timeout) from None
        except aiohttp.ClientError as exc:
            raise broke(target, exc) from None
        if response.status >= 400:
            try:
                raise await _status_failure(target, response)
            finally:
                response.release()
        return response


def timed_out(target: AgentTarget, timeout: aiohttp.ClientTimeout) -> AgentFailure:
    limit = timeout.total or timeout.sock_read
    within = f" within {limit:g}s" if limit else ""
    return AgentFailure(504, "timeout", f"agent '{target.id}' did not answer{within}")


def broke(target: AgentTarget, exc: BaseException) -> AgentFailure:
    return AgentFailure(502, "read error", f"agent '{target.id}' broke off: {describe(exc)}")


def malformed(target: AgentTarget, what: str) -> AgentFailure:
    return AgentFailure(502, "malformed response", f"agent '{target.id}' {what}")


def too_large(target: AgentTarget, limit: int) -> AgentFailure:
    return AgentFailure(
        502,
        "too large",
        f"agent '{target.id}' sent an answer larger than {limit} bytes "
        "(overrides.max_upstream_response_bytes)",
    )


async def _status_failure(target: AgentTarget, response: aiohttp.ClientResponse) -> AgentFailure:
    try:
        raw = await response.content.read(_MAX_ERROR_BODY)
    except (aiohttp.ClientError, TimeoutError):
        raw = b""
    said = upstream_message(raw) or response.reason or "error"
    # An agent's 4xx is about the request (the client's to fix, or a limit): its status
    # stands. Anything else is the agent failing: a bad gateway.
    status = response.status if response.status < 500 else 502
    return AgentFailure(
        status,
        f"HTTP {response.status}",
        f"agent '{target.id}' answered HTTP {response.status}: {redact_text(said)}",
    )
