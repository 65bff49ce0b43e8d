"""Every scrubber and parser the trace path runs on captured text is linear in its input.

One long unbroken word used to stall trace storage for everyone: `redact_text`'s patterns
were quadratic (0.08 s at 1k characters, 1.2 s at 4k, 18.5 s at 16k) and a run of
`key` cubic. These tests time each entry point at two sizes, on adversarial inputs and
on inputs hypothesis makes up, and check the CPU time grows about as the size does
(tests/linear_time.py). What is masked stays what the old patterns masked: they are kept
here as the reference.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from linear_time import assert_linear, growth

from proxy.config.redact import _CREDENTIAL_WORDS, MASK, redact_line, redact_text, redact_url
from proxy.telemetry import budget, signals, store_scrub
from proxy.telemetry.analysis import analyze_record
from proxy.telemetry.record import TelemetryRecord
from proxy.telemetry.store import RequestRow, SpanRow, StoreBatch, TraceStore
from proxy.wire.sse import SSEParser


def repeat(unit: str) -> Callable[[int], str]:
    """`unit` repeated to exactly n characters."""
    return lambda n: (unit * (n // len(unit) + 1))[:n]


# Each one was slow for some pattern, or is the kind of run a pattern could stall on.
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "one letter": repeat("a"),
    "equals": repeat("="),
    "at signs": repeat("@"),
    "schemes": repeat("://"),
    "letter schemes": repeat("a://"),
    "credential word": repeat("key"),
    "query of credential words": lambda n: "?" + repeat("key")(n - 1),
    "key pairs": repeat("key: "),
    "plain pairs": repeat("a: "),
    "query pairs": repeat("?a=&"),
    "userinfo": lambda n: "http://" + repeat("x@")(n - 7),
    "key prefixes": repeat("sk-"),
    "bearer": repeat("bearer "),
    "digits and letters": repeat("1a"),
    "boundaries then dashes": lambda n: "a-" * 20 + "-" * (n - 40),
    "words then a letter": lambda n: repeat("ab-")(n - 1) + "é",
    "quotes": repeat('\'"key"'),
    "thanks anyway": repeat("thanks anyway "),
    "backticks": repeat("`"),
    "code fences": repeat("```a"),
    "negations": repeat("not thanks "),
    "spaces": repeat(" "),
    "newlines": repeat("\n"),
    "deep json text": lambda n: "[" * (n // 2) + "]" * (n - n // 2),
}


def _redact_all(text: str) -> str:
    return redact_text(text, limit=sys.maxsize)


def _scrub_json_text(text: str) -> Any:
    return store_scrub.scrub_json(text)


def _scrub_json_value(text: str) -> Any:
    return store_scrub.scrub_json_column([{"content": text, "list": [text]}])


class _StoreWrite:
    """TraceStore.write of a request whose error, messages and span carry the text: the
    store's own entry point, scrubbing included. One store for the whole module."""

    def __init__(self) -> None:
        self.store: TraceStore | None = None
        self.count = 0

    def __call__(self, text: str) -> None:
        if self.store is None:
            self.store = TraceStore.open(Path(tempfile.mkdtemp()) / "traces.db")
        self.count += 1
        trace = f"{self.count:032x}"
        self.store.write(
            StoreBatch(
                requests=[
                    RequestRow(
                        trace,
                        1.0,
                        span_id=f"{self.count:016x}",
                        error=text,
                        request_messages=[{"role": "user", "content": text}],
                    )
                ],
                spans=[SpanRow(f"{self.count:016x}", trace, "s", 1, attributes={"note": text})],
            )
        )


SCRUBBERS: dict[str, Callable[[str], Any]] = {
    "redact_text": _redact_all,
    "redact_text with a limit": redact_text,
    "redact_line": redact_line,
    "redact_url": redact_url,
    "scrub_text": store_scrub.scrub_text,
    "is_clean": store_scrub.is_clean,
    "scrub_json of text": _scrub_json_text,
    "scrub_json_column": _scrub_json_value,
    "TraceStore.write": _StoreWrite(),
}


@pytest.mark.parametrize("kind", ADVERSARIAL)
@pytest.mark.parametrize("scrubber", SCRUBBERS)
def test_scrubbers_are_linear_on_adversarial_text(scrubber: str, kind: str) -> None:
    assert_linear(SCRUBBERS[scrubber], ADVERSARIAL[kind], what=f"{scrubber} on {kind}")


def _nested(depth: int) -> Any:
    value: Any = "sk-abcdefgh"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    "scrub",
    [store_scrub.scrub_json, lambda v: store_scrub.scrub_json_column([v, v])],
    ids=["scrub_json", "scrub_json_column"],
)
def test_deep_json_is_scrubbed_in_linear_time(scrub: Callable[[Any], Any]) -> None:
    # Both depths are past what orjson writes (254) and past Python's recursion limit, so
    # both take the path that cuts the nesting: it must not walk the rest of it, nor
    # fail. Built outside the timing (building is linear anyway).
    small, large = _nested(1024), _nested(64 * 1024)
    assert orjson.loads(scrub(large) if scrub is store_scrub.scrub_json else scrub(large)[0])
    ratio = growth(scrub, small, large)
    assert ratio <= 4 * 64, f"{ratio:.0f}x"


# --- the parsers the worker runs on a captured exchange ----------------------------------


def _signals(text: str) -> Any:
    signals.clear_caches()  # or the second run of a size only looks its answer up
    return signals.analyze(
        [
            {"role": "assistant", "content": "Done."},  # the user's text is then a reaction
            {"role": "user", "content": text},
            {"role": "assistant", "content": text, "tool_calls": [_call(text)]},
            {"role": "tool", "content": "error: " + text},
        ],
        {"role": "assistant", "content": text},
        error=text,
        status=500,
    )


def _call(arguments: str) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}


def _record(**fields: Any) -> TelemetryRecord:
    base: dict[str, Any] = {
        "trace_id": "0" * 31 + "1",
        "span_id": "0" * 15 + "1",
        "sampled": True,
        "start_ns": 0,
        "end_ns": 1,
        "request_id": "r",
        "listener": "llm",
        "api": "openai_chat",
        "path": "/v1/chat/completions",
        "status": 200,
    }
    return TelemetryRecord(**(base | fields))


def _utf8(text: str) -> str:
    """The text as a JSON body can carry it (a body never holds a lone surrogate)."""
    return text.encode("utf-8", "replace").decode()


def _analyze_bodies(text: str) -> Any:
    signals.clear_caches()
    text = _utf8(text)
    request = {"model": "m", "messages": [{"role": "user", "content": text}]}
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    return analyze_record(
        _record(request_body=orjson.dumps(request), response_body=orjson.dumps(response)),
        signals=True,
        capture=True,
    )


def _stream_of(text: str, size: int = 8) -> bytes:
    """A Chat Completions stream that sends the text as deltas of `size` characters, and
    as the arguments of a tool call."""
    chunks = []
    for i in range(0, len(text), size):
        piece = text[i : i + size]
        delta = {"content": piece, "tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        if i == 0:
            delta["tool_calls"][0] |= {"id": "c1", "type": "function"}
            delta["tool_calls"][0]["function"]["name"] = "f"
        chunks.append(b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta}]}))
    return b"\n\n".join(chunks) + b"\n\ndata: [DONE]\n\n"


def _responses_stream_of(text: str, size: int = 8) -> bytes:
    added = "response.output_item.added"
    events = [
        {"type": added, "output_index": 0, "item": {"type": "message"}},
        {
            "type": added,
            "output_index": 1,
            "item": {"type": "function_call", "name": "f", "call_id": "c1"},
        },
    ]
    for i in range(0, len(text), size):
        piece = text[i : i + size]
        events.append({"type": "response.output_text.delta", "output_index": 0, "delta": piece})
        events.append(
            {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": piece}
        )
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def _analyze_stream(text: str) -> Any:
    signals.clear_caches()
    text = _utf8(text)
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    record = _record(request_body=body, response_body=_stream_of(text), stream=True)
    return analyze_record(record, signals=True, capture=True)


def _analyze_responses_stream(text: str) -> Any:
    signals.clear_caches()
    text = _utf8(text)
    body = orjson.dumps({"model": "m", "input": "hi"})
    record = _record(
        request_body=body,
        response_body=_responses_stream_of(text),
        stream=True,
        api="openai_responses",
        path="/v1/responses",
    )
    return analyze_record(record, signals=True, capture=True)


def _user_patterns(text: str) -> Any:
    """The user-message patterns, on a whole text (the analyzer clips a message to 4 KiB
    first, which bounds them, but they must not rely on it)."""
    signals.clear_caches()
    return signals._user_hits(text, True, True)


def _tool_patterns(text: str) -> Any:
    signals.clear_caches()
    return signals._tool_hit(text.lower())


def _sse(text: str) -> Any:
    parser = SSEParser()
    return parser.feed(text.encode("utf-8", "surrogatepass")), parser.flush()


# Signals read at most the head and tail of each message (4 KiB): above that size there is
# nothing left to grow, so their own patterns are timed below it.
PARSERS: dict[str, tuple[Callable[[str], Any], int, int]] = {
    "signals": (_signals, 64, 4096),
    "signal patterns, user": (_user_patterns, 1024, 64 * 1024),
    "signal patterns, tool": (_tool_patterns, 1024, 64 * 1024),
    # Whole records: a smaller range, the same 64x, to keep the suite quick.
    "analyze_record, JSON bodies": (_analyze_bodies, 512, 32 * 1024),
    "analyze_record, a chat stream": (_analyze_stream, 512, 32 * 1024),
    "analyze_record, a responses stream": (_analyze_responses_stream, 512, 32 * 1024),
    "SSEParser": (_sse, 1024, 64 * 1024),
}


@pytest.mark.parametrize("kind", ADVERSARIAL)
@pytest.mark.parametrize("parser", PARSERS)
def test_parsers_are_linear_on_adversarial_text(parser: str, kind: str) -> None:
    function, small, large = PARSERS[parser]
    assert_linear(function, ADVERSARIAL[kind], small, large, what=f"{parser} on {kind}")


@pytest.mark.parametrize("stream", [_stream_of, _responses_stream_of], ids=["chat", "responses"])
def test_a_long_stream_is_replayed_in_linear_time(monkeypatch, stream) -> None:
    # Past the record's budget a stream is cut, which bounds the replay; without the cut
    # it must still be linear. It was not: each tool-call argument delta was appended
    # with `+=`, copying all the arguments so far.
    monkeypatch.setattr(budget, "MAX_STREAM_BYTES", 1 << 30)
    monkeypatch.setattr(budget, "MAX_CPU_SECONDS", 1e6)
    api = "openai_chat" if stream is _stream_of else "openai_responses"
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "input": "hi"}

    def replay(body: bytes) -> Any:
        body_in = orjson.dumps(request)
        record = _record(api=api, stream=True, request_body=body_in, response_body=body)
        return analyze_record(record, signals=False, capture=True)

    small, large = stream("a" * 8 * 1024, 100), stream("a" * 4 * 1024 * 1024, 100)
    ratio = growth(replay, small, large)
    assert ratio <= 4 * 512, f"{ratio:.0f}x for 512x the text"


# --- generated input ---------------------------------------------------------------------

# What patterns are made of, so that hypothesis finds the runs that hurt quickly.
PIECES = [
    "a", "Z", "0", "_", "-", ".", "=", "@", ":", "/", "?", "&", "#", "'", '"', " ", "\n", "\t",
    ",", "}", "]", "$", "*", "+", "`", ">", "!", "é", "ſ", "\u212a", "\udcff", "://", "key",
    "token", "secret", "sk-", "Bearer ", "basic ", "thanks", "not ", "error", "tool ",
]  # fmt: skip
units = st.lists(
    st.sampled_from(PIECES) | st.text(min_size=1, max_size=3), min_size=1, max_size=6
).map("".join)


@given(unit=units, scrubber=st.sampled_from(sorted(SCRUBBERS)))
@example(unit="a", scrubber="redact_text")
@example(unit="key", scrubber="redact_text")
@example(unit="a-", scrubber="scrub_text")
def test_scrubbers_are_linear_on_generated_runs(unit: str, scrubber: str) -> None:
    # 16 KiB against 256: the same 64x, and quick enough to try many runs.
    assert_linear(SCRUBBERS[scrubber], repeat(unit), 256, 16 * 1024, what=f"{scrubber} {unit!r}")


@given(unit=units, parser=st.sampled_from(sorted(PARSERS)))
def test_parsers_are_linear_on_generated_runs(unit: str, parser: str) -> None:
    function, small, large = PARSERS[parser]
    small, large = min(small, 256), min(large, 16 * 1024)
    assert_linear(function, repeat(unit), small, large, what=f"{parser} {unit!r}")


# --- what is masked: exactly what the old patterns masked -------------------------------

_OLD_PAIR = re.compile(
    rf"(?P<lead>[\"']?[\w.-]*(?:{_CREDENTIAL_WORDS})[\w.-]*[\"']?\s*:\s+)"
    r"(?P<value>[^\s,}\]#$][^,}\]#]*)",
    re.IGNORECASE,
)
_OLD_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,'\"}]+")
_OLD_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s'\"]+@", re.IGNORECASE)
_OLD_PARAM = re.compile(
    rf"(?P<name>[?&][\w.-]*(?:{_CREDENTIAL_WORDS})[\w.-]*=)[^&#\s'\"]+", re.IGNORECASE
)
_OLD_KEY_LIKE = re.compile(r"\b(?:sk|pk|rk|ak|key)[-_][A-Za-z0-9_*.-]{6,}|\b[A-Za-z0-9_-]{40,}\b")


def old_redact_text(text: str) -> str:
    """redact_text as it was: right, but quadratic (and cubic on `key` repeated)."""
    text = _OLD_PAIR.sub(lambda m: m.group("lead") + MASK, text)
    text = _OLD_USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    text = _OLD_PARAM.sub(lambda m: m.group("name") + MASK, text)
    text = _OLD_BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _OLD_KEY_LIKE.sub(MASK, text)


MORE_PIECES = ["PASSWORD", "auth", "dsn", "https://", "ak_", "1", "x-", "0123456789" * 4,
               "abcdefghij" * 2, "-" * 30, "a-" * 10, "Ā"]  # fmt: skip
TEXTS = st.lists(st.sampled_from([*PIECES, *MORE_PIECES]) | st.text(max_size=3), max_size=14).map(
    "".join
)


@given(TEXTS)
@example("note: api_key: sk-abcdefgh")  # a credential inside a value that is not one
@example("'.xhttps://abc123@cookie:")  # the characters before a scheme's letter stay
@example("a-" * 20 + "-" * 50)  # a run whose last word boundary is too near
@example("x" * 40 + "-sk_abcdefgé")  # a token, then a prefixed key in the same run
def test_redact_text_masks_what_the_old_patterns_masked(text: str) -> None:
    assert redact_text(text, limit=sys.maxsize) == old_redact_text(text)
