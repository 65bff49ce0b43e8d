"""Output filters: each chunk the client is about to get goes through the listener's
output filters, in order, and what they return is sent instead.

A stream's chunk is what the relay writes at once: whole events, in the client's wire
format; a JSON answer is one chunk. One plano(filter) step per filter and answer counts
the chunks it saw and changed; its decision is the strongest of the answer's (block, then
error, then modify, then pass). An error passes the chunk through under fail_open (the
default for output filters, as upstream); under fail_closed, or on an enforced block, the
answer stops: a JSON answer becomes an error response, a stream ends with an error event.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from proxy.canonical import ChatResponse
from proxy.config.redact import redact_text
from proxy.filters import record
from proxy.filters.errors import FilterBlocked
from proxy.filters.http_transport import MAX_BLOCK_TEXT
from proxy.filters.verdict import (
    ATTR_CHUNKS,
    ATTR_CHUNKS_MODIFIED,
    ATTR_DECISION,
    Decision,
    FilterFailure,
)

if TYPE_CHECKING:
    from proxy.config.model import Filter
    from proxy.filters.builtin.base import AnswerTransform
    from proxy.filters.chain import FilterRunner, RequestFilters
    from proxy.gateway.exchange import Step

JSON = "application/json"
SSE = "text/event-stream"
# The answer's decision on its step: the strongest of its chunks'.
_RANK = {None: 0, "pass": 1, "modify": 2, "error": 3, "block": 4}


class OutputRun:
    """One answer's pass through the output filters."""

    def __init__(self, filters: RequestFilters, runners: tuple[FilterRunner, ...]):
        self.filters = filters
        self.runners = runners
        self.steps: list[Step] | None = None  # made at the first chunk

    async def chunk(self, data: bytes, content_type: str, whole: bool = True) -> bytes:
        """The chunk as the client gets it. Raises FilterBlocked or FilterErrored.
        `whole`: a JSON chunk is the whole answer (a large one is relayed in pieces)."""
        if self.steps is None:
            self.steps = [
                record.new_step(self.filters.exchange, r.spec, "output") for r in self.runners
            ]
        whole_json = whole and content_type == JSON
        for runner, step in zip(self.runners, self.steps, strict=True):
            data = await self._one(runner, step, data, content_type, whole_json)
        return data

    async def _one(
        self, runner: FilterRunner, step: Step, data: bytes, content_type: str, whole_json: bool
    ) -> bytes:
        attributes = step.attributes
        attributes[ATTR_CHUNKS] = int(attributes.get(ATTR_CHUNKS, 0)) + 1
        before = attributes.get(ATTR_DECISION)
        try:
            return await self._judge(runner, step, data, content_type, whole_json)
        finally:
            _strongest(step, before)

    async def _judge(
        self, runner: FilterRunner, step: Step, data: bytes, content_type: str, whole_json: bool
    ) -> bytes:
        filters, spec = self.filters, runner.spec
        result = await filters.call(
            runner, step, "output", data, None, filters.request.path, filters.api, content_type
        )
        if isinstance(result, FilterFailure):
            filters.failed(step, spec, "output", result)  # raises when it fails closed
            return data
        observe = spec.mode == "observe"
        if result.decision is Decision.MODIFY:
            new = result.body or b""
            if whole_json and _json_object(new) is None:
                failure = FilterFailure("malformed reply", "returned an answer that is not JSON")
                filters.failed(step, spec, "output", failure)
                return data
            chunks_modified = int(step.attributes.get(ATTR_CHUNKS_MODIFIED, 0)) + 1
            step.attributes[ATTR_CHUNKS_MODIFIED] = chunks_modified
            record.modified(step, data, new)
            return data if observe else new
        if result.decision is Decision.BLOCK:
            text = redact_text(filters.mask(result.message or ""), MAX_BLOCK_TEXT)
            record.blocked(step, text)
            if not observe:
                raise FilterBlocked(spec.id, result.status or 400, text, "answer")
        return data


def _strongest(step: Step, before: object) -> None:
    """Keep the answer's strongest decision on the step (the call just recorded its own)."""
    now = step.attributes.get(ATTR_DECISION)
    if _RANK.get(before, 0) > _RANK.get(now, 0):
        step.attributes[ATTR_DECISION] = before


def _json_object(data: bytes) -> dict | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --- answer transforms (a built-in's rewriting of the answer's text) ------------------


class Chained:
    """Several transforms, applied in the order their filters ran."""

    def __init__(self, transforms: list[AnswerTransform]):
        self.transforms = transforms

    def feed(self, text: str) -> str:
        for transform in self.transforms:
            text = transform.feed(text)
        return text

    def flush(self) -> str:
        text = ""
        for transform in self.transforms:
            text = transform.feed(text) + transform.flush() if text else transform.flush()
        return text


class WatchedTransform:
    """A built-in output filter's transform, as a filter step: it counts the deltas it
    rewrites, times itself, records whether the text changed (modify) or not (pass), and
    in observe mode returns the text unchanged."""

    def __init__(self, inner: AnswerTransform, filters: RequestFilters, spec: Filter):
        self.inner, self.filters, self.spec = inner, filters, spec
        self.step: Step | None = None
        self.observe = spec.mode == "observe"
        self.pending = ""  # text fed and not yet given back unchanged
        self.changed = False

    def feed(self, text: str) -> str:
        started = self._start()
        self.step.attributes[ATTR_CHUNKS] = int(self.step.attributes.get(ATTR_CHUNKS, 0)) + 1
        out = self.inner.feed(text)
        self._compare(text, out)
        self.step.seconds += time.perf_counter() - started
        return text if self.observe else out

    def flush(self) -> str:
        started = self._start()
        out = self.inner.flush()
        self._compare("", out)
        if self.pending:
            self.changed = True  # fed text it never gave back
        decision = "modify" if self.changed else "pass"
        record.decided(self.step, decision, not self.observe)
        self.step.seconds += time.perf_counter() - started
        return "" if self.observe else out

    def _start(self) -> float:
        if self.step is None:
            self.step = record.new_step(self.filters.exchange, self.spec, "output")
            record.decided(self.step, "pass", not self.observe)  # until flush says more
        return time.perf_counter()

    def _compare(self, text: str, out: str) -> None:
        """Whether what comes out is what went in, held back or not: linear, and holding
        no more than the transform holds back."""
        if self.changed:
            return
        self.pending += text
        if self.pending.startswith(out):
            self.pending = self.pending[len(out) :]
        else:
            self.changed = True
            self.pending = ""


def transform_response(response: ChatResponse, transform: AnswerTransform) -> None:
    """Rewrite a whole answer's text in place: its parts in order, as one stream."""
    parts = response.content
    for part in parts:
        part.text = transform.feed(part.text)
    rest = transform.flush()
    if rest:
        if parts:
            parts[-1].text += rest
        else:
            from proxy.canonical import TextPart

            parts.append(TextPart(rest))
