"""What a filter's verdict does to the client's request: errors in the client's own shape.

Both are `ClientError`s, so the edge renders them as every other error (an OpenAI error
object, an Anthropic error) and a stream ends with an error event in the client's format.
"""

from __future__ import annotations

from proxy.gateway.errors import ClientError


class FilterBlocked(ClientError):
    """A filter refused the request (or the answer): its status, its words."""

    def __init__(self, filter_id: str, status: int, text: str, what: str = "request"):
        super().__init__(status, f"filter '{filter_id}' blocked the {what}: {text}")
        self.filter_id, self.text = filter_id, text


class FilterErrored(ClientError):
    """A fail_closed filter gave no verdict: 504 when it timed out, 502 otherwise."""

    def __init__(self, filter_id: str, outcome: str, detail: str):
        status = 504 if outcome == "timeout" else 502
        super().__init__(status, f"filter '{filter_id}' failed ({outcome}): {detail}")
        self.filter_id, self.outcome = filter_id, outcome
