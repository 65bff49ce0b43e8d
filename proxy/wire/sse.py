"""Server-sent events: incremental parsing of a byte stream, and framing of events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str | None = None


class SSEParser:
    """Feed it chunks as they arrive; it returns the events completed so far.

    Follows the WHATWG rules that matter for LLM APIs: `\\n`, `\\r\\n` or `\\r` line ends,
    `:` comment lines (keep-alive pings), multi-line `data:` joined by `\\n`, and an
    optional single space after the colon.
    """

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            end, width = _line_end(self._buffer)
            if end < 0:
                return events
            line = self._buffer[:end].decode("utf-8", errors="replace")
            self._buffer = self._buffer[end + width :]
            event = self._line(line)
            if event is not None:
                events.append(event)

    def flush(self) -> list[SSEEvent]:
        """Events left when the stream ends without a final blank line."""
        return self.feed(b"\n\n") if self._buffer or self._data else []

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = SSEEvent(data="\n".join(self._data), event=self._event)
            self._data, self._event = [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def _line_end(buffer: bytes) -> tuple[int, int]:
    """Index and width of the first line terminator, or (-1, 0)."""
    newline = buffer.find(b"\n")
    carriage = buffer.find(b"\r")
    if carriage < 0:
        return newline, 1
    if newline == carriage + 1:
        return carriage, 2
    if carriage == len(buffer) - 1:
        return -1, 0  # a lone \r at the end may be half of \r\n: wait for more
    if newline < 0 or carriage < newline:
        return carriage, 1
    return newline, 1


def format_sse(data: str | bytes, event: str | None = None) -> bytes:
    """One event, framed: `event: name` (optional), `data: ...`, blank line."""
    payload = data if isinstance(data, bytes) else data.encode()
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"
