"""Upstream Plano's http filter protocol: POST {url}{request path} with the body.

The filter gets the body as the client sent it (or the answer's chunk), the request's
headers, `x-arch-upstream` (its id) and `traceparent` (its plano(filter) span). It answers:
- 2xx: go on, with its body in place of the one sent (the same bytes: a pass);
  204 No Content: a pass;
- 4xx: block; its status and its body's text are what the client gets;
- 5xx, or anything else: an error, for the filter's `on_error` to decide.
What it sends back is read within a bound; a larger reply is an error, not a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from proxy.config.redact import redact_url
from proxy.filters.verdict import Decision, FilterFailure, Verdict
from proxy.gateway.answer import read_head
from proxy.upstream.errors import describe

# A block's text as the filter wrote it: enough for any message, bounded for the client.
MAX_BLOCK_TEXT = 4096


class HttpTransport:
    """One http filter; calls share the listener's pooled filter session."""

    def __init__(self, url: str, session: aiohttp.ClientSession, max_reply: int):
        self.base = url.rstrip("/")
        self.session = session
        self.max_reply = max_reply  # the bound on what one reply may hold

    async def call(
        self, body: bytes, path: str, headers: Mapping[str, str], timeout: float
    ) -> Verdict:
        url = self.base + path
        try:
            async with asyncio.timeout(timeout):
                # Never followed: a 307 would resend the body and the client's headers
                # wherever the filter points; a redirect is an unusable answer.
                async with self.session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as reply:
                    raw, whole = await read_head(reply.content, self.max_reply)
                    status = reply.status
        except TimeoutError:
            raise FilterFailure("timeout", f"no answer within {timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise FilterFailure("connect error", describe(exc)) from None
        except aiohttp.ClientError as exc:
            where = redact_url(url)
            raise FilterFailure("read error", f"{where}: {describe(exc)}") from None
        if not whole:
            raise FilterFailure(
                "malformed reply", f"answered more than {self.max_reply} bytes", status
            )
        if status == 204:
            return Verdict(Decision.PASS, status=status)
        if 200 <= status < 300:
            data = bytes(raw)
            if data == body:
                return Verdict(Decision.PASS, status=status)
            return Verdict(Decision.MODIFY, data, status)
        if 400 <= status < 500:
            text = data_text(bytes(raw)) or f"HTTP {status}"
            return Verdict(Decision.BLOCK, status=status, message=text)
        said = data_text(bytes(raw))
        raise FilterFailure(
            f"HTTP {status}",
            f"answered HTTP {status}" + (f": {said}" if said else ""),
            status,
        )

    async def close(self) -> None:
        """The session is the listener's: nothing of this filter's own to close."""


def data_text(raw: bytes) -> str:
    """A reply's body as text for a message: decoded leniently, trimmed and bounded."""
    return raw[:MAX_BLOCK_TEXT].decode("utf-8", errors="replace").strip()
