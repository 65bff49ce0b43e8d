"""A raw HTTP/1.1 client for hostile-input tests.

The SDKs and aiohttp's client refuse to send what these tests need: header values that are
not UTF-8, a Content-Encoding that does not match the body, hundreds of headers. http.client
takes header names and values as bytes and checks only for CR/LF injection, so it sends
them as given, over one keep-alive connection that is reopened when the server closes it.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

Header = tuple[str | bytes, str | bytes]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return orjson.loads(self.body)


class RawClient:
    def __init__(self, port: int, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def request(
        self, method: str, path: str, body: bytes = b"", headers: Iterable[Header] = ()
    ) -> Reply:
        headers = list(headers)
        try:
            return self._send(method, path, body, headers)
        except (ConnectionError, http.client.RemoteDisconnected):
            if not self._reused:
                raise
            # A kept-alive connection the server had closed: nothing was handled, resend.
            self.close()
            return self._send(method, path, body, headers)

    def _send(self, method: str, path: str, body: bytes, headers: list[Header]) -> Reply:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self._reused = False
        conn = self._conn
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if method != "GET" or body:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if response.will_close:
            self.close()
        else:
            self._reused = True
        return reply

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


ANTHROPIC_PATHS = ("/v1/messages", "/routing/v1/messages")


def error_message(path: str, reply: Reply) -> str:
    """The message of an error reply, asserting it has the shape of the path's client API:
    Anthropic's under /v1/messages, OpenAI's (Chat and Responses alike) everywhere else."""
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    payload = reply.json()
    if path.split("?")[0].startswith(ANTHROPIC_PATHS):
        assert payload["type"] == "error", payload
        error = payload["error"]
    else:
        error = payload["error"]
        assert set(error) >= {"message", "type", "param", "code"}, payload
    for key in ("type", "message"):
        assert isinstance(error[key], str), payload
        assert error[key], payload
    return error["message"]
