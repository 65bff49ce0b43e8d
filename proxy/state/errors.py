"""What a request gets when a store it needs cannot answer."""

from __future__ import annotations

from proxy.gateway.errors import ClientError

# How long a client should wait before trying again: about the circuit breaker's window,
# after which the store is tried again.
RETRY_AFTER_S = "1"


class StoreUnavailable(ClientError):
    """A store is down and its config says fail_closed: a 503 in the client's API shape.

    A ClientError, so every edge (model and agent listeners, each client API) renders it
    with no handler of its own. The message names the store's kind, never its URL.
    """

    def __init__(self, store: str, op: str):
        super().__init__(
            503,
            f"a shared store ({store}) is unavailable ({op}); try again shortly",
            retry_after=RETRY_AFTER_S,
        )
        self.store, self.op = store, op
