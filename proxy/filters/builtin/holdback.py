"""Rewriting matches in an answer that arrives as deltas, with a bounded holdback.

An output guardrail (PII redaction, content policy) must catch a value the stream cut in
two ("4111 1111" then " 1111 1111"). Each delta is scanned together with what was held
back; text up to `hold` characters before the end is sent (a match wholly inside it is
replaced), the rest is held until the next delta. A match still open at the cut holds
the cut back to its start, unless it started more than `2 * hold` characters back: then
it is replaced as far as it goes, so the held text never exceeds `2 * hold` characters
plus one delta. The last `context` characters sent are scanned again (not sent again) so
that a pattern's look-behind sees what preceded the held text.

Limit: a match longer than `hold` that the stream splits is found only in part; the
callers pick `hold` above the longest value they look for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

# (start, end, what replaces the match), left to right, not overlapping.
Spans = Callable[[str], Iterable[tuple[int, int, str]]]


class HoldbackRewriter:
    """An AnswerTransform: `feed` each delta, `flush` at the end; the joined output is
    the joined input with each match of `spans` replaced."""

    def __init__(self, spans: Spans, hold: int, context: int = 64) -> None:
        self._spans = spans
        self._hold, self._context_size = hold, context
        self._held = ""
        self._context = ""  # the tail of what was already sent, original text

    def feed(self, text: str) -> str:
        return self._emit(self._held + text, final=False)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._emit(held, final=True) if held else ""

    def _emit(self, buffer: str, final: bool) -> str:
        context = self._context
        offset = len(context)
        cut = len(buffer) if final else max(0, len(buffer) - self._hold)
        oldest_deferrable = len(buffer) - 2 * self._hold
        out: list[str] = []
        done = 0
        for start, end, replacement in self._spans(context + buffer):
            start, end = start - offset, end - offset
            if end <= done:
                continue  # wholly in the context: already sent
            start = max(start, done)  # a match begun in the context: replace its rest
            if start >= cut:
                break
            if end > cut:
                if start >= oldest_deferrable:
                    cut = start  # may grow with the next delta: decide then
                    break
                cut = end  # open too long: replace what there is
            out += (buffer[done:start], replacement)
            done = end
        out.append(buffer[done:cut])
        self._held = buffer[cut:]
        self._context = (
            (context + buffer[:cut])[-self._context_size :] if self._context_size else ""
        )
        return "".join(out)
