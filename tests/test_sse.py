"""SSEParser: the same events however the bytes are split, with any line ends."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.wire.sse import SSEEvent, SSEEventTooLarge, SSEParser, format_sse

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


# --- bounded: what a parser holds never grows past its limit ------------------------------


def fed_until_too_large(parser: SSEParser, chunks) -> int | None:
    """Bytes fed up to and including the chunk that raised SSEEventTooLarge; None if none did."""
    fed = 0
    for chunk in chunks:
        fed += len(chunk)
        try:
            parser.feed(chunk)
        except SSEEventTooLarge:
            return fed
    return None


def test_one_endless_line_raises_at_the_bound() -> None:
    parser = SSEParser(max_event_bytes=1000)
    assert fed_until_too_large(parser, [b"data: ", *[b"a" * 100] * 100]) == 1006
    with pytest.raises(SSEEventTooLarge, match=r"^an event longer than 1000 bytes$"):
        SSEParser(max_event_bytes=1000).feed(b"data: " + b"a" * 1000)


def test_an_event_of_many_data_lines_raises_at_the_bound() -> None:
    lines = [b"data: " + b"a" * 94 + b"\n"] * 100  # 101 bytes, 94 of them data
    assert fed_until_too_large(SSEParser(max_event_bytes=1000), lines) == 11 * 101
    assert fed_until_too_large(SSEParser(max_event_bytes=1000), [b"".join(lines)]) == 100 * 101


def test_a_line_split_across_chunks_within_the_bound_is_whole() -> None:
    parser = SSEParser(max_event_bytes=1000)
    chunks = [b"data: ", b"a" * 400, b"b" * 400, b"\r", b"\n\n"]
    assert [e for c in chunks for e in parser.feed(c)] == [SSEEvent("a" * 400 + "b" * 400)]


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from([None, "message_start", "ping"]),
        st.lists(st.text(alphabet='ab {}:"é', max_size=300), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=8,
)


@given(events=_EVENTS, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_a_bound_above_every_line_changes_nothing(events, cuts) -> None:
    data = b"".join(
        (f"event: {name}\n" if name else "").encode()
        + b"".join(f"data: {line}\n".encode() for line in lines)
        + b"\n"
        for name, lines in events
    )
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    bounded = SSEParser(max_event_bytes=len(data) + 1)
    got = [e for c in chunks for e in bounded.feed(c)] + bounded.flush()
    assert got == [SSEEvent("\n".join(lines), name) for name, lines in events]


@given(sizes=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=200))
def test_an_endless_line_raises_once_past_the_bound(sizes):
    # Exactly at the first chunk that takes the unfinished line past the bound: never
    # before (a line within it is kept), never later (nothing more is held).
    limit = 20_000
    fed = fed_until_too_large(SSEParser(max_event_bytes=limit), [b"x" * n for n in sizes])
    assert fed == next((total for total in itertools.accumulate(sizes) if total > limit), None)


def test_a_long_line_in_small_chunks_takes_linear_time() -> None:
    # Appending each chunk to the unfinished line copied it per chunk: 8x the line took
    # 66x the time (8 MiB in 4 KiB chunks: 8.8 s). Process time of the feeding, the best
    # of three runs, with a generous margin and a floor for timer noise.
    def cost(size: int) -> float:
        best = float("inf")
        for _ in range(3):
            parser = SSEParser(max_event_bytes=1 << 24)
            piece = b"a" * 4096
            parser.feed(b"data: ")
            started = time.process_time()
            for _ in range(size // 4096):
                parser.feed(piece)
            best = min(best, time.process_time() - started)
            assert parser.feed(b"\n\n")[0].data == "a" * size
        return best

    small, large = cost(1 << 20), cost(8 << 20)
    assert large < 24 * max(small, 1e-3), (small, large)
