"""What one record may cost the telemetry worker: the per-trace budget.

The writer builds traces one record after another, so a record that takes a minute delays
every trace behind it by a minute. Each record is therefore held to a budget, and what is
over it is cut, never waited for:

- Message text: at most `MAX_TEXT` characters of message content and tool-call arguments
  (request and response together) are analysed and stored. Shared fairly: texts shorter
  than an equal share are kept whole, and the long ones split what is left equally, so a
  giant answer does not cost the question its text. A text that is cut keeps its head and
  tail around a marker that says how much was cut.
- Messages: at most `MAX_MESSAGES` of a request's messages (the newest), each with at most
  `MAX_PARTS` content parts, are read at all.
- Streams: at most `MAX_STREAM_BYTES` of a captured stream are replayed (the gateway keeps
  no more than that anyway).
- CPU: a record whose analysis has used `MAX_CPU_SECONDS` of the writer's CPU time stops
  there (a stream is not replayed further, signals are skipped). CPU time, not wall time:
  the writer runs at idle priority, and waiting for a CPU is not the record's doing.

A cut record is stored with what fits and marked: the `plano.messages.truncated` attribute
on its `plano(inbound)` span, and the marker in the text itself. The worker counts cut
records in `plano_telemetry_truncated_total{reason}`.

With these bounds the worst records measured (a 20 MB answer of one letter, which took the
writer minutes before; a body of 800,000 messages) cost it under 0.5 s of CPU: see
docs/benchmarks.md, "Hostile records". Parsing a body with orjson is not cut, but it is
linear and bounded by the gateway's own body limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

MAX_TEXT = 1 << 20
MAX_MESSAGES = 1000
MAX_PARTS = 100
MAX_STREAM_BYTES = 1 << 20
MAX_CPU_SECONDS = 0.5
# Where a text's head and tail meet, e.g. "[… 19,922,944 characters not stored …]".
MARKER = "\n[… {:,} characters not stored …]\n"

# Why a record was cut, as plano_telemetry_truncated_total counts it.
TEXT, MESSAGES, STREAM, TIME = "text", "messages", "stream", "time"


class RecordBudget:
    """One record's budget, spent as its analysis goes; `cuts` says what was cut."""

    __slots__ = ("_deadline", "cuts", "text_left")

    def __init__(self) -> None:
        self.text_left = MAX_TEXT
        # The writer thread's own CPU time: what this record has cost it so far.
        self._deadline = time.thread_time() + MAX_CPU_SECONDS
        self.cuts: set[str] = set()

    def out_of_time(self) -> bool:
        if time.thread_time() < self._deadline:
            return False
        self.cuts.add(TIME)
        return True

    @property
    def truncated(self) -> bool:
        return bool(self.cuts)

    def newest_messages(self, body: dict[str, Any], key: str) -> None:
        """Trim `body[key]` (a list of messages or input items) in place to the newest
        MAX_MESSAGES, each with at most MAX_PARTS content parts: the wire codecs then
        parse a bounded body, however many messages the client sent."""
        items = body.get(key)
        if not isinstance(items, list):
            return
        if len(items) > MAX_MESSAGES:
            body[key] = items = items[-MAX_MESSAGES:]
            self.cuts.add(MESSAGES)
        for i, item in enumerate(items):
            if isinstance(item, dict):
                content = item.get("content")
                if isinstance(content, list) and len(content) > MAX_PARTS:
                    items[i] = {**item, "content": content[:MAX_PARTS]}
                    self.cuts.add(MESSAGES)

    def first_parts(self, body: dict[str, Any], key: str) -> None:
        """Trim a list of content parts outside the messages (Anthropic's `system`)."""
        parts = body.get(key)
        if isinstance(parts, list) and len(parts) > MAX_PARTS:
            body[key] = parts[:MAX_PARTS]
            self.cuts.add(MESSAGES)

    def stream(self, raw: bytes) -> bytes:
        if len(raw) <= MAX_STREAM_BYTES:
            return raw
        self.cuts.add(STREAM)
        return raw[:MAX_STREAM_BYTES]

    def fit(self, messages: Iterable[dict[str, Any]]) -> None:
        """Clip the texts of OpenAI-style message dicts in place so that all of them
        together hold at most the text budget: each gets an equal share of what the
        shorter ones leave (water-filling), so only the longest are cut."""
        slots: list[tuple[int, dict[str, Any], str]] = []  # (length, holder, key)
        for message in messages:
            if isinstance(message.get("content"), str):
                slots.append((len(message["content"]), message, "content"))
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    slots.append((len(function["arguments"]), function, "arguments"))
        slots.sort(key=lambda slot: slot[0])
        left = self.text_left
        for n, (length, holder, key) in enumerate(slots):
            room = max(left, 0) // (len(slots) - n)
            if length > room:
                holder[key] = self._clip(holder[key], room)
                length = room
            left -= length
        self.text_left = left

    def _clip(self, text: str, room: int) -> str:
        self.cuts.add(TEXT)
        head = room // 2
        tail = room - head
        return text[:head] + MARKER.format(len(text) - room) + (text[-tail:] if tail else "")
