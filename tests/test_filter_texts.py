"""proxy/filters/texts.py: where message text lives in each API's body, and rewriting it
into a copy without touching anything else."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from proxy.filters import texts

CHAT = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:x"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"q": "x"}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "result"},
    ],
    "tools": [
        {"type": "function", "function": {"name": "f", "description": "text", "parameters": {}}}
    ],
}
ANTHROPIC = {
    "model": "claude",
    "system": [{"type": "text", "text": "sys"}],
    "messages": [
        {"role": "user", "content": "hello"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "t", "name": "f", "input": {"a": "b"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": [{"type": "text", "text": "out"}],
                }
            ],
        },
    ],
}
RESPONSES = {
    "model": "gpt-4o",
    "instructions": "inst",
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "q"},
                {"type": "input_image", "image_url": "u"},
            ],
        },
        {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "tool says"},
        {"role": "user", "content": "plain"},
    ],
}


def roles_texts(body, api):
    return [(s.role, s.text) for s in texts.slots(body, api)]


def test_chat_slots_skip_tools_ids_and_images():
    assert roles_texts(CHAT, "openai_chat") == [
        ("system", "be brief"),
        ("user", "hi"),
        ("tool", "result"),
    ]
    assert roles_texts(CHAT, "agent") == roles_texts(CHAT, "openai_chat")


def test_anthropic_slots_include_system_blocks_and_tool_results():
    assert roles_texts(ANTHROPIC, "anthropic_messages") == [
        ("system", "sys"),
        ("user", "hello"),
        ("assistant", "ok"),
        ("tool", "out"),
    ]
    assert roles_texts({"system": "s", "messages": []}, "anthropic_messages") == [("system", "s")]


def test_responses_slots():
    assert roles_texts(RESPONSES, "openai_responses") == [
        ("system", "inst"),
        ("user", "q"),
        ("assistant", "a"),
        ("tool", "tool says"),
        ("user", "plain"),
    ]
    assert roles_texts({"input": "just text"}, "openai_responses") == [("user", "just text")]


def test_rewrite_changes_only_text_and_leaves_the_original_alone():
    for body, api in (
        (CHAT, "openai_chat"),
        (ANTHROPIC, "anthropic_messages"),
        (RESPONSES, "openai_responses"),
    ):
        before = copy.deepcopy(body)
        new = texts.rewrite(body, api, lambda slot: slot.text.upper())
        assert body == before  # never modified
        assert [s.text for s in texts.slots(new, api)] == [
            s.text.upper() for s in texts.slots(body, api)
        ]
        assert new["model"] == body["model"]
        # Put the text back: the rest of the body is equal.
        originals = iter(s.text for s in texts.slots(body, api))
        assert texts.rewrite(new, api, lambda slot, it=originals: next(it)) == body


def test_api_for_path():
    assert texts.api_for_path("/v1/messages") == "anthropic_messages"
    assert texts.api_for_path("/v1/responses?x=1") == "openai_responses"
    assert texts.api_for_path("/v1/chat/completions") == "openai_chat"
    assert texts.api_for_path("/agent/weather") == "openai_chat"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "messages",
                    "content",
                    "role",
                    "type",
                    "text",
                    "system",
                    "input",
                    "instructions",
                    "output",
                    "model",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@given(JSON, st.sampled_from(texts.APIS))
def test_any_json_never_raises_and_identity_gives_the_same_body(body, api):
    before = copy.deepcopy(body)
    slots = texts.slots(body, api)
    assert all(isinstance(s.text, str) for s in slots)
    assert texts.rewrite(body, api, lambda slot: slot.text) is body
    changed = texts.rewrite(body, api, lambda slot: slot.text + "!")
    assert body == before
    assert len(texts.slots(changed, api)) == len(slots)
