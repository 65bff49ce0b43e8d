"""Server-sent events: incremental parsing of a byte stream, and framing of events."""

from __future__ import annotations

from dataclasses import dataclass

# The largest event a parser holds unless told otherwise: far above any real LLM event, and
# a bound on what one endless line from a broken or hostile server can cost.
DEFAULT_MAX_EVENT_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class SSEEvent:
    data: str
    event: str | None = None


class SSEEventTooLarge(ValueError):
    """One event (or one line of it) grew past the parser's bound before it ended."""

    def __init__(self, limit: int):
        super().__init__(f"an event longer than {limit} bytes")
        self.limit = limit


class SSEParser:
    """Feed it chunks as they arrive; it returns the events completed so far.

    Follows the WHATWG rules that matter for LLM APIs: `\\n`, `\\r\\n` or `\\r` line ends,
    `:` comment lines (keep-alive pings), multi-line `data:` joined by `\\n`, and an
    optional single space after the colon.

    What it holds is bounded: an unfinished line, or the data lines of an unfinished event,
    longer than `max_event_bytes` raise SSEEventTooLarge instead of growing without end.
    """

    __slots__ = ("_buffer", "_data", "_data_size", "_event", "_max", "_pieces", "_pieces_size")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buffer = b""
        # Chunks of one unfinished line, joined once its end arrives: appending them to
        # the buffer would copy it per chunk, quadratic in a long line.
        self._pieces: list[bytes] = []
        self._pieces_size = 0
        self._data: list[str] = []
        self._data_size = 0
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if b"\n" not in chunk and b"\r" not in chunk:
            return self._hold(chunk)
        if self._pieces:
            self._pieces.append(chunk)
            chunk = b"".join(self._pieces)
            self._pieces, self._pieces_size = [], 0
        buffer = self._buffer + chunk if self._buffer else chunk
        # Cut into lines once, then keep the unfinished tail: slicing the buffer line by
        # line copied the rest each time, quadratic in a large chunk (the telemetry
        # worker feeds a whole captured stream at once).
        if b"\r" not in buffer:
            *lines, self._buffer = buffer.split(b"\n")
        else:
            lines, self._buffer = _split_lines(buffer)
        if len(self._buffer) > self._max:
            raise SSEEventTooLarge(self._max)
        events: list[SSEEvent] = []
        for raw in lines:
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[SSEEvent]:
        """Events left when the stream ends without a final blank line."""
        return self.feed(b"\n\n") if self._buffer or self._pieces or self._data else []

    def _hold(self, chunk: bytes) -> list[SSEEvent]:
        """A chunk inside one line: kept aside until the line ends, within the bound."""
        if chunk:
            self._pieces.append(chunk)
            self._pieces_size += len(chunk)
            if len(self._buffer) + self._pieces_size > self._max:
                raise SSEEventTooLarge(self._max)
        return []

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = SSEEvent(data="\n".join(self._data), event=self._event)
            self._data, self._data_size, self._event = [], 0, None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data_size += len(value)
            if self._data_size > self._max:
                raise SSEEventTooLarge(self._max)
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def _split_lines(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines (`\n`, `\r\n` or `\r` ended) and the unfinished rest."""
    lines: list[bytes] = []
    start = 0
    newline, carriage = buffer.find(b"\n"), buffer.find(b"\r")
    while True:
        # Each find resumes past the last line: linear in the buffer, however many lines.
        if 0 <= newline < start:
            newline = buffer.find(b"\n", start)
        if 0 <= carriage < start:
            carriage = buffer.find(b"\r", start)
        end, width = _line_end(newline, carriage, len(buffer))
        if end < 0:
            return lines, buffer[start:]
        lines.append(buffer[start:end])
        start = end + width


def _line_end(newline: int, carriage: int, size: int) -> tuple[int, int]:
    """Index and width of the first line terminator, given the first \n and \r at or
    after the line's start (-1: none), or (-1, 0)."""
    if carriage < 0 or 0 <= newline < carriage:
        return newline, 1
    if newline == carriage + 1:
        return carriage, 2
    if carriage == size - 1:
        return -1, 0  # a lone \r at the end may be half of \r\n: wait for more
    return carriage, 1


def format_sse(data: str | bytes, event: str | None = None) -> bytes:
    """One event, framed: `event: name` (optional), `data: ...`, blank line."""
    payload = data if isinstance(data, bytes) else data.encode()
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"
