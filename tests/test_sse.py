"""SSEParser: the same events however the bytes are split, with any line ends."""

from __future__ import annotations

import random

import pytest

from proxy.wire.sse import SSEEvent, SSEParser, format_sse

STREAM = (
    b": ping\n\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: first line\ndata: second line\n\n"
    b"data:no space\n\n"
    b"id: 7\nretry: 100\ndata: [DONE]\n\n"
    b"event: ping\n\n"
)
EXPECTED = [
    SSEEvent('{"a": 1}', "message_start"),
    SSEEvent("first line\nsecond line"),
    SSEEvent("no space"),
    SSEEvent("[DONE]"),
    SSEEvent("", "ping"),
]


def parse(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events + parser.flush()


def split_randomly(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, min(12, len(data) - 1))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_gives_the_same_events(ending: bytes) -> None:
    assert parse([STREAM.replace(b"\n", ending)]) == EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_any_split_gives_the_same_events(ending: bytes) -> None:
    data = STREAM.replace(b"\n", ending)
    rng = random.Random(ending)
    for _ in range(200):
        assert parse(split_randomly(data, rng)) == EXPECTED
    assert parse([bytes([b]) for b in data]) == EXPECTED


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent("x")]


def test_a_newline_before_a_trailing_cr_ends_its_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b\r") == [SSEEvent("a")]
    assert parser.feed(b"\r\n") == [SSEEvent("b")]


def test_unterminated_last_event_comes_out_on_flush() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: tail") == []
    assert parser.flush() == [SSEEvent("tail")]
    assert parser.flush() == []


def test_a_large_stream_fed_at_once_parses_every_event() -> None:
    # 20,000 events (0.5 MB) in one chunk, as the telemetry worker feeds a captured stream.
    count = 20_000
    data = b"".join(format_sse(f'{{"n": {i}}}') for i in range(count))
    events = parse([data])
    assert len(events) == count
    assert events[-1] == SSEEvent('{"n": 19999}')
    assert parse([data.replace(b"\n", b"\r\n")])[-1] == SSEEvent('{"n": 19999}')


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert parse([b"data: \xff\xfe ok\n\n"]) == [SSEEvent("\ufffd\ufffd ok")]
