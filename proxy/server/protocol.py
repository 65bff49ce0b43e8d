"""The model listener's HTTP connections: requests aiohttp cannot parse, answered in JSON.

aiohttp answers a request it cannot parse (a header over 8 KB, too many headers, a body
encoding it cannot decode) before any handler or middleware runs: a plain-text 400, and a
full traceback in the log for each one. Here those get the client API's error shape (chosen
by the path, when the request line was readable) and one warning line. The exception's
own text is never shown or logged: aiohttp puts up to 100 bytes of the offending line in
it, and that line may be an Authorization header.
"""

from __future__ import annotations

import logging
import re

import orjson
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    ContentEncodingError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from proxy.gateway.client_api import api_for_path
from proxy.server.client_input import UNSUPPORTED_ENCODING

log = logging.getLogger("plano.server")

# A request line's method and path: at the start of a read, or just before " HTTP/1.x".
_REQUEST_START = re.compile(rb"[A-Z]{3,7} (/[!-~]*)")
_REQUEST_LINE = re.compile(rb"[A-Z]{3,7} (/[!-~]*)\Z")
_MAX_REQUEST_LINE = 8190


class ModelAppRunner(web.AppRunner):
    """An AppRunner whose connections answer unparseable requests in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds a plain Server inside the app; its one override is which
        # connection class it makes, so the class is swapped rather than the app rebuilt.
        server.__class__ = _Server
        return server


class _Server(web.Server):
    __slots__ = ()

    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Connection(RequestHandler):
    __slots__ = ("_path_hint",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._path_hint = "/"

    def data_received(self, data: bytes) -> None:
        # When parsing fails aiohttp has forgotten the path: remember the last one seen.
        # A body that happens to hold a request line only changes which shape a later
        # parse error on this connection takes.
        path = _last_request_path(data)
        if path is not None:
            self._path_hint = path
        super().data_received(data)

    def log_exception(self, *args, **kwargs) -> None:
        if isinstance(kwargs.get("exc_info"), RequestPayloadError):
            # aiohttp reads what is left of a body after the response, and a body that does
            # not decode (bad gzip) fails there: the client has had its answer already.
            log.debug("malformed request body after the response was sent")
            return
        super().log_exception(*args, **kwargs)

    def handle_error(
        self,
        request,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # too late for a response of our own
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, HttpProcessingError):
            status, text = self._describe(exc, status)
            # A first request that is not HTTP at all (TLS, a port scanner) is noise.
            quiet = self._request_count == 1 and isinstance(exc, BadHttpMethod)
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "malformed HTTP request from %s: %s",
                request.remote,
                text,
            )
            path = self._path_hint
        else:
            # A handler failed (a bug) or timed out: keep aiohttp's log, traceback and all.
            if status >= 500 and exc is not None:
                self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
            text = "internal error in the Plano gateway" if status == 500 else "gateway timeout"
            path = request.path
        payload = api_for_path(path).render_error(status, text)
        response = web.Response(
            body=orjson.dumps(payload), status=status, content_type="application/json"
        )
        response.force_close()
        return response

    def _describe(self, exc: HttpProcessingError, status: int) -> tuple[int, str]:
        """The status and a message that quotes nothing the client sent."""
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else self.max_field_size
            return status, f"the request line or a header is longer than {limit} bytes"
        if isinstance(exc, ContentEncodingError):
            return 415, UNSUPPORTED_ENCODING
        if exc.message.startswith("Too many headers"):
            return status, f"too many headers: at most {self.max_headers}"
        if isinstance(exc, InvalidHeader):
            return status, "a header is malformed"
        if isinstance(exc, InvalidURLError | BadHttpMethod):
            return status, "the request line is malformed"
        return status, "the HTTP request is malformed"


def _last_request_path(data: bytes) -> str | None:
    """The path of the last request line in a read (one that ends in it, or starts with it).

    Not only at the start: a read can begin with the end of the previous request's body
    (one answered before it was read) and go on into the next request.
    """
    end = data.rfind(b" HTTP/1.")
    match = None
    if end >= 0:  # aiohttp refuses request lines over 8190 bytes: look no further back
        start = max(data.rfind(b"\n", 0, end) + 1, end - _MAX_REQUEST_LINE)
        match = _REQUEST_LINE.search(data, start, end)
    if match is None:
        match = _REQUEST_START.match(data)  # a request line longer than the read
    return match.group(1)[:64].decode("ascii") if match is not None else None
