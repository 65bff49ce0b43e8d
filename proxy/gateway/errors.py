"""The error a client must see, raised anywhere on the request path and rendered at the
edge in the client's own API shape."""

from __future__ import annotations


class ClientError(Exception):
    """Something the client must fix: rendered in its API's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        retry_after: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.retry_after = retry_after  # passed on, so SDKs back off instead of hammering
        self.headers = headers  # more response headers (a 429's x-ratelimit-*)
