"""What a filter call decides, whatever runs the filter (http, MCP, a built-in).

The chain (proxy.filters.chain) turns a `Verdict` into what happens to the request: go
on with the same body, go on with a new one, or answer the client with the block. A
transport that could not get a verdict at all (timeout, refused connection, a 5xx)
raises `FilterFailure`; the filter's `on_error` then decides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Decision(enum.StrEnum):
    PASS = "pass"  # the body goes on unchanged
    MODIFY = "modify"  # the filter returned another body
    BLOCK = "block"  # the filter refused: the client gets its status and message
    ERROR = "error"  # no verdict: timeout, connect error, 5xx, malformed reply


class Direction(enum.StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class Mode(enum.StrEnum):
    ENFORCE = "enforce"
    OBSERVE = "observe"  # record what the filter would have done; change nothing


class OnError(enum.StrEnum):
    FAIL_CLOSED = "fail_closed"
    FAIL_OPEN = "fail_open"


@dataclass(slots=True)
class Verdict:
    decision: Decision
    body: bytes | None = None  # the replacement, for MODIFY
    status: int | None = None  # the filter's HTTP status (a block's is what the client gets)
    message: str | None = None  # a block's text, in the filter's own words


class FilterFailure(Exception):
    """The filter gave no verdict. `outcome` is short and fixed ("timeout", "HTTP 500",
    "connect error", "malformed reply") for metrics; `message` says more, for the trace
    and the client, and never carries a secret."""

    def __init__(self, outcome: str, message: str, status: int | None = None):
        super().__init__(message)
        self.outcome, self.message, self.status = outcome, message, status


# Span attributes of a plano(filter) step; the trace store, `plano traces --where` and the
# viewer read these names.
ATTR_ID = "filter.id"
ATTR_KIND = "filter.kind"  # http, mcp, pii, prompt_injection, content_policy
ATTR_DIRECTION = "filter.direction"  # input, output
ATTR_DECISION = "filter.decision"  # pass, modify, block, error
ATTR_MODE = "filter.mode"  # enforce, observe
ATTR_APPLIED = "filter.applied"  # False: observed only, or an error let through (fail_open)
ATTR_ON_ERROR = "filter.on_error"
ATTR_STATUS = "filter.status"  # the filter's HTTP status, when it answered one
ATTR_MESSAGE = "filter.message"  # a block's message (redacted, capped)
ATTR_DIFF = "filter.diff"  # for modify: a short summary of what changed
ATTR_ERROR = "filter.error"  # for error: what went wrong
ATTR_TARGET = "filter.target"  # agent listeners: the agent whose input it filtered
ATTR_CHUNKS = "filter.chunks"  # output filters: chunks seen, one span per filter and answer
ATTR_CHUNKS_MODIFIED = "filter.chunks_modified"
