"""W3C traceparent handling and the sampler."""

from __future__ import annotations

import pytest

from proxy.telemetry.tracecontext import Sampler, new_span_id, new_trace_id, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_valid_traceparent_is_read():
    parent = parse_traceparent(f"00-{TRACE}-{SPAN}-01")
    assert (parent.trace_id, parent.span_id, parent.sampled) == (TRACE, SPAN, True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00").sampled is False
    # A later version may append fields: read what version 00 defines.
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-01-extra").trace_id == TRACE


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # upper case is invalid
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{SPAN}-01",
    ],
)
def test_an_invalid_traceparent_restarts_the_trace(value):
    assert parse_traceparent(value) is None


def test_ids_are_hex_of_the_right_length_and_differ():
    traces = {new_trace_id() for _ in range(1000)}
    spans = {new_span_id() for _ in range(1000)}
    assert len(traces) == 1000
    assert len(spans) == 1000
    assert all(len(t) == 32 and int(t, 16) for t in traces)
    assert all(len(s) == 16 and int(s, 16) for s in spans)


def test_a_parent_is_continued_with_a_new_span_of_ours():
    context = Sampler(100).start(f"00-{TRACE}-{SPAN}-01")
    assert context.trace_id == TRACE
    assert context.parent_span_id == SPAN
    assert context.span_id != SPAN
    child = new_span_id()
    assert context.traceparent(child) == f"00-{TRACE}-{child}-01"


@pytest.mark.parametrize(
    ("percent", "low", "high"), [(0, 0, 0), (10, 700, 1300), (100, 10_000, 10_000)]
)
def test_ratio_sampling_keeps_the_configured_share(percent, low, high):
    sampler = Sampler(percent)
    kept = sum(sampler.start(None).sampled for _ in range(10_000))
    assert low <= kept <= high


def test_sampling_is_decided_by_the_trace_id_so_services_agree():
    sampler = Sampler(50)
    low = "0" * 16 + "0" * 15 + "1"  # low 64 bits tiny: kept at any ratio above 0
    high = "0" * 16 + "f" * 16
    assert sampler._keep(low) is True
    assert sampler._keep(high) is False


def test_the_parent_decides_unless_tracing_is_off():
    assert Sampler(1).start(f"00-{TRACE}-{SPAN}-01").sampled is True
    assert Sampler(100).start(f"00-{TRACE}-{SPAN}-00").sampled is False
    off = Sampler(0).start(f"00-{TRACE}-{SPAN}-01")
    assert off.sampled is False
    assert off.traceparent(SPAN).endswith("-00")  # still propagated, marked unsampled
