"""What a filter step records: the diff summary of a change, capped and safe on any bytes."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from proxy.filters.record import MAX_ATTRIBUTE_TEXT, diff_summary

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def test_a_summary_names_the_changed_keys_and_messages():
    before = orjson.dumps({"model": "m", "messages": [{"c": "a"}, {"c": "b"}], "x": 1})
    after = orjson.dumps({"model": "m", "messages": [{"c": "a"}, {"c": "B"}], "y": 2})
    assert diff_summary(before, after) == (
        f"messages[1], -x, +y ({len(before)} -> {len(after)} bytes)"
    )


def test_bodies_that_are_not_objects_get_their_sizes():
    assert diff_summary(b"data: x\n\n", b"data: y z\n\n") == "9 -> 11 bytes"


@given(st.binary(max_size=200) | json_values.map(orjson.dumps), json_values.map(orjson.dumps))
def test_any_bodies_give_a_bounded_line(before, after):
    summary = diff_summary(before, after)
    assert len(summary) <= MAX_ATTRIBUTE_TEXT
    assert "\n" not in summary
