"""The Anthropic Messages codec: exact shapes, round trips, and what the official SDK accepts."""

from __future__ import annotations

import base64
import copy

import anthropic
import httpx2 as httpx  # the HTTP client the anthropic SDK 2.x is built on
import orjson
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from proxy.canonical import (
    ChatRequest,
    ChatResponse,
    Finish,
    ImagePart,
    Message,
    StopReason,
    StreamError,
    StreamStart,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolChoice,
    Usage,
    UsageReport,
    WireError,
)
from proxy.wire.anthropic_messages import (
    StreamParser,
    StreamRenderer,
    build_request,
    parse_request,
    parse_response,
    render_error,
    render_response,
)
from proxy.wire.sse import SSEParser

STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def body(**fields) -> dict:
    base = {"model": "claude-x", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}
    return base | fields


def events_of(raw: bytes) -> list[tuple[str | None, dict]]:
    """(event name, JSON data) of each SSE event in a rendered stream."""
    parser = SSEParser()
    events = parser.feed(raw) + parser.flush()
    return [(event.event, orjson.loads(event.data)) for event in events]


def render_stream(renderer: StreamRenderer, events: list) -> bytes:
    return b"".join(renderer.render(event) for event in events)


def sdk_client(handler) -> anthropic.Anthropic:
    transport = httpx.MockTransport(handler)
    return anthropic.Anthropic(
        api_key="test", base_url="http://proxy.test", http_client=httpx.Client(transport=transport)
    )


def serve(payload: bytes, content_type: str, status: int = 200):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=payload, headers={"content-type": content_type})

    return handler


# --- parse_request ----------------------------------------------------------------------------


def test_parse_text_request_with_all_parameters():
    req = parse_request(
        body(
            system="Be brief.",
            messages=[
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
                {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
            ],
            temperature=0.5,
            top_p=0.9,
            stop_sequences=["END"],
            stream=True,
            metadata={"user_id": "u-1"},
        )
    )
    assert req == ChatRequest(
        model="claude-x",
        messages=[
            Message(role="system", content=[TextPart("Be brief.")]),
            Message(role="user", content=[TextPart("Hello")]),
            Message(role="assistant", content=[TextPart("Hi!")]),
            Message(role="user", content=[TextPart("Bye")]),
        ],
        max_tokens=256,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        stream=True,
        user="u-1",
    )


def test_system_blocks_become_one_system_message_each():
    req = parse_request(
        body(system=[{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}])
    )
    assert [(m.role, m.text) for m in req.messages] == [
        ("system", "One."),
        ("system", "Two."),
        ("user", "hi"),
    ]
    assert build_request(req, "m")["system"] == [
        {"type": "text", "text": "One."},
        {"type": "text", "text": "Two."},
    ]


def test_unknown_top_level_fields_and_block_extras_are_ignored():
    req = parse_request(
        body(
            thinking={"type": "enabled", "budget_tokens": 1024},
            top_k=5,
            service_tier="auto",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "y"},
                    ],
                },
            ],
        )
    )
    assert [m.text for m in req.messages] == ["x", "y"]


def test_images_base64_and_url():
    req = parse_request(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                        },
                    ],
                }
            ]
        )
    )
    assert req.messages[0].content == [
        TextPart("Compare"),
        ImagePart(url=f"data:image/png;base64,{PNG}"),
        ImagePart(url="https://example.com/cat.jpg"),
    ]
    assert build_request(req, "m")["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": [{"type": "text", "text": "21"}, {"type": "text", "text": "C"}],
            },
            {"type": "text", "text": "Which is warmer?"},
        ],
    },
]


def test_tools_tool_use_and_tool_results():
    req = parse_request(
        body(
            messages=TOOL_CONVERSATION,
            tools=[WEATHER],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        )
    )
    assert req.tools == [
        Tool(name="get_weather", description="Current weather", parameters=WEATHER["input_schema"])
    ]
    assert req.tool_choice == ToolChoice(mode="required")
    assert req.parallel_tool_calls is False
    assert req.messages == [
        Message(role="user", content=[TextPart("Weather in Paris and Rome?")]),
        Message(
            role="assistant",
            content=[TextPart("Checking.")],
            tool_calls=[
                ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCall(id="toolu_2", name="get_weather", arguments='{"city":"Rome"}'),
            ],
        ),
        Message(role="tool", content=[TextPart("18C")], tool_call_id="toolu_1"),
        Message(role="tool", content=[TextPart("21"), TextPart("C")], tool_call_id="toolu_2"),
        Message(role="user", content=[TextPart("Which is warmer?")]),
    ]


def test_tool_result_order_puts_results_before_text_of_the_same_message():
    req = parse_request(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "first"},
                        {"type": "tool_result", "tool_use_id": "t1", "content": "r"},
                    ],
                }
            ]
        )
    )
    assert [(m.role, m.text) for m in req.messages] == [("tool", "r"), ("user", "first")]


def test_tool_result_error_flag_is_kept_as_text():
    req = parse_request(
        body(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "boom",
                            "is_error": True,
                        }
                    ],
                }
            ]
        )
    )
    assert req.messages == [
        Message(role="tool", content=[TextPart("Error: "), TextPart("boom")], tool_call_id="t1")
    ]


def test_tool_result_with_an_image_round_trips():
    result = {
        "type": "tool_result",
        "tool_use_id": "t1",
        "content": [
            {"type": "text", "text": "chart:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ],
    }
    req = parse_request(body(messages=[{"role": "user", "content": [result]}]))
    assert req.messages == [
        Message(
            role="tool",
            content=[TextPart("chart:"), ImagePart(url=f"data:image/png;base64,{PNG}")],
            tool_call_id="t1",
        )
    ]
    assert build_request(req, "m")["messages"] == [{"role": "user", "content": [result]}]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({"type": "auto"}, ToolChoice(mode="auto")),
        ({"type": "any"}, ToolChoice(mode="required")),
        ({"type": "tool", "name": "get_weather"}, ToolChoice(mode="tool", name="get_weather")),
        ({"type": "none"}, ToolChoice(mode="none")),
    ],
)
def test_tool_choice_both_ways(wire: dict, expected: ToolChoice):
    req = parse_request(body(tools=[WEATHER], tool_choice=wire))
    assert req.tool_choice == expected
    assert req.parallel_tool_calls is None
    assert build_request(req, "m")["tool_choice"] == wire


@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        ({"model": None}, "model: expected a string, got null", "model"),
        ({"model": 3}, "model: expected a string, got a number", "model"),
        ({"max_tokens": 0}, "max_tokens: expected a positive integer, got 0", "max_tokens"),
        (
            {"max_tokens": "9"},
            "max_tokens: expected a positive integer, got a string",
            "max_tokens",
        ),
        (
            {"max_tokens": True},
            "max_tokens: expected a positive integer, got a boolean",
            "max_tokens",
        ),
        ({"messages": {"role": "user"}}, "messages: expected an array, got an object", "messages"),
        (
            {"messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: must be 'user' or 'assistant', got 'system'",
            "messages.0.role",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content: expected a string or an array of content blocks, got a number",
            "messages.0.content",
        ),
        (
            {"messages": [{"role": "user"}]},
            "messages.0.content: field required",
            "messages.0.content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages.0.content.0.text: expected a string, got a number",
            "messages.0.content.0.text",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages.0.content.0.type: content block type 'document' is not supported in user"
            " messages",
            "messages.0.content.0.type",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}
                ]
            },
            "messages.0.content.0.type: content block type 'tool_result' is not supported in"
            " assistant messages",
            "messages.0.content.0.type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                    }
                ]
            },
            "messages.0.content.0.input: expected an object, got a string",
            "messages.0.content.0.input",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ]
            },
            "messages.0.content.0.source.type: image source must be 'base64' or 'url', got 'file'",
            "messages.0.content.0.source.type",
        ),
        (
            {"system": 7},
            "system: expected a string or an array of text blocks, got a number",
            "system",
        ),
        ({"temperature": "hot"}, "temperature: expected a number, got a string", "temperature"),
        (
            {"stop_sequences": "END"},
            "stop_sequences: expected an array, got a string",
            "stop_sequences",
        ),
        ({"stream": "yes"}, "stream: expected a boolean, got a string", "stream"),
        (
            {"metadata": {"user_id": 5}},
            "metadata.user_id: expected a string, got a number",
            "metadata.user_id",
        ),
        (
            {"tools": [{"name": "f"}]},
            "tools.0.input_schema: field required",
            "tools.0.input_schema",
        ),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools.0.type: tool type 'web_search_20250305' is not supported",
            "tools.0.type",
        ),
        (
            {"tool_choice": {"type": "required"}},
            "tool_choice.type: must be one of 'auto', 'any', 'tool', 'none', got 'required'",
            "tool_choice.type",
        ),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name: field required", "tool_choice.name"),
    ],
)
def test_wire_errors_name_the_field(fields: dict, message: str, param: str):
    with pytest.raises(WireError) as caught:
        parse_request(body(**fields))
    assert caught.value.message == message
    assert caught.value.param == param


@pytest.mark.parametrize("missing", ["model", "max_tokens", "messages"])
def test_missing_required_fields(missing: str):
    fields = body()
    del fields[missing]
    with pytest.raises(WireError, match=f"^{missing}: field required$"):
        parse_request(fields)


def test_body_must_be_an_object():
    with pytest.raises(WireError, match="request body: expected a JSON object, got an array"):
        parse_request([])  # type: ignore[arg-type]


def test_parse_request_accepts_what_the_sdk_sends():
    sent: list[dict] = []
    reply = render_response(ChatResponse(id="msg_1", model="m", content=[TextPart("ok")]), "m")

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(orjson.loads(request.content))
        return httpx.Response(200, json=reply)

    sdk_client(handler).messages.create(
        model="claude-x",
        max_tokens=100,
        system=[{"type": "text", "text": "sys"}],
        messages=copy.deepcopy(TOOL_CONVERSATION),
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    req = parse_request(sent[0])
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert req.tool_choice == ToolChoice(mode="tool", name="get_weather")


# --- render_response --------------------------------------------------------------------------


def test_render_text_response_exact_shape_and_sdk_valid():
    resp = ChatResponse(
        id="chatcmpl-9",
        model="gpt-x",
        content=[TextPart("Hello "), TextPart("there")],
        usage=Usage(input_tokens=100, output_tokens=7, cached_input_tokens=60),
    )
    rendered = render_response(resp, "claude-alias")
    assert rendered == {
        "id": "msg_chatcmpl-9",
        "type": "message",
        "role": "assistant",
        "model": "claude-alias",
        "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 40,
            "output_tokens": 7,
            "cache_read_input_tokens": 60,
            "cache_creation_input_tokens": 0,
        },
    }
    message = SDKMessage.model_validate(rendered)
    assert message.usage.cache_read_input_tokens == 60


def test_render_tool_use_response_through_the_sdk():
    resp = ChatResponse(
        id="msg_abc",
        model="m",
        tool_calls=[
            ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
            ToolCall(id="toolu_2", name="noop", arguments=""),
            ToolCall(id="toolu_3", name="broken", arguments='{"city": "Par'),
        ],
        stop_reason=StopReason.TOOL_CALLS,
    )
    rendered = render_response(resp, "m")
    assert rendered["id"] == "msg_abc"
    assert rendered["stop_reason"] == "tool_use"
    assert [block["input"] for block in rendered["content"]] == [
        {"city": "Paris"},
        {},
        {"_raw": '{"city": "Par'},
    ]
    message = sdk_client(serve(orjson.dumps(rendered), "application/json")).messages.create(
        model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert next((b.type, b.name, b.input) for b in message.content) == (
        "tool_use",
        "get_weather",
        {"city": "Paris"},
    )


def test_raw_tool_arguments_survive_a_round_trip():
    call = ToolCall(id="toolu_3", name="broken", arguments='{"city": "Par')
    rendered = render_response(ChatResponse(id="x", model="m", tool_calls=[call]), "m")
    history = body(messages=[{"role": "assistant", "content": rendered["content"]}])
    assert parse_request(history).messages[0].tool_calls == [call]


@pytest.mark.parametrize(
    ("reason", "wire"),
    [
        (StopReason.END, "end_turn"),
        (StopReason.LENGTH, "max_tokens"),
        (StopReason.TOOL_CALLS, "tool_use"),
        (StopReason.STOP_SEQUENCE, "stop_sequence"),
        (StopReason.CONTENT_FILTER, "refusal"),
        (StopReason.ERROR, "end_turn"),
    ],
)
def test_stop_reasons(reason: StopReason, wire: str):
    rendered = render_response(ChatResponse(id="1", model="m", stop_reason=reason), "m")
    assert SDKMessage.model_validate(rendered).stop_reason == wire
    assert rendered["id"] == "msg_1"


def test_tool_calls_with_a_natural_end_render_as_tool_use():
    call = ToolCall(id="t", name="f", arguments="{}")
    resp = ChatResponse(id="1", model="m", tool_calls=[call], stop_reason=StopReason.END)
    assert render_response(resp, "m")["stop_reason"] == "tool_use"


# --- render_error -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (402, "billing_error"),
        (500, "api_error"),
        (504, "timeout_error"),
        (502, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_shapes(status: int, error_type: str):
    rendered = render_error(status, "nope")
    assert rendered == {"type": "error", "error": {"type": error_type, "message": "nope"}}
    if error_type != "request_too_large":  # the SDK's error union lacks this documented type
        assert ErrorResponse.model_validate(rendered).error.type == error_type


def test_error_type_override_and_sdk_exception():
    assert render_error(400, "m", "overloaded_error")["error"]["type"] == "overloaded_error"
    client = sdk_client(
        serve(orjson.dumps(render_error(429, "slow down")), "application/json", 429)
    )
    client.max_retries = 0
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }


# --- StreamRenderer ---------------------------------------------------------------------------

TOOL_STREAM = [
    StreamStart(id="resp_1", model="up"),
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallStart(index=0, id="toolu_1", name="get_weather"),
    ToolCallDelta(index=0, arguments='{"city":'),
    ToolCallDelta(index=0, arguments=' "Paris"}'),
    ToolCallStart(index=1, id="toolu_2", name="get_weather"),
    ToolCallDelta(index=1, arguments='{"city": "Rome"}'),
    Finish(StopReason.TOOL_CALLS),
    UsageReport(Usage(input_tokens=50, output_tokens=20, cached_input_tokens=30)),
]


def test_stream_events_are_exact_and_sdk_valid():
    raw = render_stream(StreamRenderer("claude-alias"), TOOL_STREAM)
    events = events_of(raw)
    for name, data in events:
        assert name == data["type"]
        STREAM_EVENT.validate_python(data)
    assert [(d["type"], d.get("index")) for _, d in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    start = events[0][1]["message"]
    assert start["id"] == "msg_resp_1"
    assert start["model"] == "claude-alias"
    assert start["content"] == []
    assert events[5][1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {},
    }
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"city":'}
    assert events[12][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 20,
            "output_tokens": 20,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 0,
        },
    }


def test_sdk_stream_accumulator_accepts_the_stream():
    raw = render_stream(StreamRenderer("claude-alias"), TOOL_STREAM)
    client = sdk_client(serve(raw, "text/event-stream"))
    with client.messages.stream(
        model="claude-alias", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Let me check."
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("text", None),
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"city": "Rome"}),
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (20, 20)
    assert final.usage.cache_read_input_tokens == 30


def test_interleaved_tool_deltas_still_assemble_in_the_sdk():
    events = [
        StreamStart(id="1", model="u"),
        ToolCallStart(index=0, id="t0", name="a"),
        ToolCallStart(index=1, id="t1", name="b"),
        ToolCallDelta(index=0, arguments='{"x": 1}'),
        ToolCallDelta(index=1, arguments='{"y": 2}'),
        ToolCallDelta(index=7, arguments="{}"),  # never started: dropped
        Finish(StopReason.END),
    ]
    renderer = StreamRenderer("m")
    raw = render_stream(renderer, events) + renderer.finish()
    client = sdk_client(serve(raw, "text/event-stream"))
    with client.messages.stream(
        model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.id, b.input) for b in final.content] == [("t0", {"x": 1}), ("t1", {"y": 2})]
    assert final.stop_reason == "tool_use"


def test_message_delta_waits_for_usage():
    renderer = StreamRenderer("m")
    head = render_stream(renderer, [StreamStart(id="1", model="u"), TextDelta("hi")])
    finish = renderer.render(Finish(StopReason.LENGTH))
    assert [d["type"] for _, d in events_of(finish)] == ["content_block_stop"]
    tail = renderer.render(UsageReport(Usage(input_tokens=3, output_tokens=4)))
    assert [d["type"] for _, d in events_of(tail)] == ["message_delta", "message_stop"]
    assert events_of(tail)[0][1]["delta"]["stop_reason"] == "max_tokens"
    assert renderer.finish() == b""
    assert renderer.render(TextDelta("late")) == b""
    assert head.startswith(b"event: message_start\ndata: ")


def test_finish_closes_a_stream_that_ended_without_usage():
    renderer = StreamRenderer("m")
    render_stream(
        renderer, [StreamStart(id="1", model="u"), TextDelta("hi"), Finish(StopReason.END)]
    )
    tail = events_of(renderer.finish())
    assert [d["type"] for _, d in tail] == ["message_delta", "message_stop"]
    assert tail[0][1]["usage"]["output_tokens"] == 0
    assert renderer.finish() == b""


def test_finish_alone_still_makes_a_valid_message():
    raw = StreamRenderer("m").finish()
    final = (
        sdk_client(serve(raw, "text/event-stream"))
        .messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
        .__enter__()
        .get_final_message()
    )
    assert final.content == []
    assert final.stop_reason == "end_turn"


def test_usage_before_finish_is_held_until_finish():
    renderer = StreamRenderer("m")
    render_stream(renderer, [StreamStart(id="1", model="u"), TextDelta("x")])
    assert renderer.render(UsageReport(Usage(input_tokens=1, output_tokens=2))) == b""
    types = [d["type"] for _, d in events_of(renderer.render(Finish(StopReason.END)))]
    assert types == ["content_block_stop", "message_delta", "message_stop"]


def test_stream_error_ends_the_stream():
    renderer = StreamRenderer("m")
    render_stream(renderer, [StreamStart(id="1", model="u"), TextDelta("partial")])
    raw = renderer.render(StreamError("upstream died", "upstream_error"))
    assert events_of(raw) == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "upstream died"}})
    ]
    assert renderer.render(Finish(StopReason.END)) == b""
    assert renderer.finish() == b""


def test_sdk_raises_on_a_rendered_stream_error():
    renderer = StreamRenderer("m")
    raw = render_stream(renderer, [StreamStart(id="1", model="u"), StreamError("boom")])
    client = sdk_client(serve(raw, "text/event-stream"))
    stream = client.messages.stream(
        model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
    )
    with pytest.raises(anthropic.APIStatusError, match="boom"), stream as events:
        events.get_final_message()


# --- build_request ----------------------------------------------------------------------------


def test_build_request_exact_shape():
    req = ChatRequest(
        model="alias",
        messages=[
            Message(role="system", content=[TextPart("Be brief.")]),
            Message(role="user", content=[TextPart("Weather?")]),
            Message(
                role="assistant",
                tool_calls=[
                    ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
                    ToolCall(id="call_2", name="get_weather", arguments='{"city":"Rome"}'),
                ],
            ),
            Message(role="tool", content=[TextPart("18C")], tool_call_id="call_1"),
            Message(role="tool", content=[TextPart("21C")], tool_call_id="call_2"),
            Message(role="user", content=[TextPart("Thanks")]),
        ],
        tools=[Tool(name="get_weather", parameters=WEATHER["input_schema"])],
        parallel_tool_calls=False,
        stop=["END"],
        user="u-1",
        temperature=0.2,
    )
    assert build_request(req, "claude-real") == {
        "model": "claude-real",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "call_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": [{"type": "text", "text": "18C"}],
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_2",
                        "content": [{"type": "text", "text": "21C"}],
                    },
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [{"name": "get_weather", "input_schema": WEATHER["input_schema"]}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "temperature": 0.2,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "stream": False,
    }


def test_build_then_parse_round_trips_the_canonical_request():
    original = parse_request(
        body(
            system="sys",
            messages=TOOL_CONVERSATION,
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            max_tokens=77,
            top_p=0.5,
            stream=True,
        )
    )
    rebuilt = build_request(original, "claude-x")
    assert parse_request(rebuilt) == original


def test_build_request_images_and_percent_encoded_data_urls():
    req = ChatRequest(
        model="m",
        messages=[
            Message(
                role="user",
                content=[
                    ImagePart(url="data:image/svg+xml,%3Csvg%2F%3E"),
                    ImagePart(url="https://x.test/a.png", detail="high"),
                ],
            )
        ],
    )
    assert build_request(req, "m")["messages"][0]["content"] == [
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": "image/svg+xml",
                "data": base64.b64encode(b"<svg/>").decode(),
            },
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]


def test_build_request_skips_tool_choice_without_tools_and_empty_messages():
    req = ChatRequest(
        model="m",
        messages=[
            Message(role="user", content=[TextPart("a")]),
            Message(role="assistant", content=[TextPart("")]),
            Message(role="user", content=[TextPart("b")]),
        ],
        tool_choice=ToolChoice(mode="required"),
        max_tokens=10,
        stream=True,
    )
    built = build_request(req, "m")
    assert "tool_choice" not in built
    assert built["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert (built["max_tokens"], built["stream"]) == (10, True)


def test_tool_choice_none_never_carries_disable_parallel():
    req = ChatRequest(
        model="m",
        messages=[Message(role="user", content=[TextPart("a")])],
        tools=[Tool(name="f")],
        tool_choice=ToolChoice(mode="none"),
        parallel_tool_calls=False,
    )
    assert build_request(req, "m")["tool_choice"] == {"type": "none"}


# --- parse_response ---------------------------------------------------------------------------

UPSTREAM_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-real",
    "content": [
        {"type": "thinking", "thinking": "...", "signature": "s"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    },
}


def test_parse_response_counts_cached_tokens_as_input():
    resp = parse_response(UPSTREAM_MESSAGE)
    assert resp.id == "msg_01"
    assert resp.model == "claude-real"
    assert resp.content == [TextPart("Checking.")]
    assert resp.tool_calls == [
        ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}')
    ]
    assert resp.stop_reason is StopReason.TOOL_CALLS
    assert resp.usage == Usage(input_tokens=130, output_tokens=5, cached_input_tokens=100)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        ("end_turn", StopReason.END),
        ("max_tokens", StopReason.LENGTH),
        ("tool_use", StopReason.TOOL_CALLS),
        ("stop_sequence", StopReason.STOP_SEQUENCE),
        ("refusal", StopReason.CONTENT_FILTER),
        ("pause_turn", StopReason.END),
        ("model_context_window_exceeded", StopReason.LENGTH),
        (None, StopReason.END),
    ],
)
def test_parse_response_stop_reasons(wire: str | None, reason: StopReason):
    assert parse_response(UPSTREAM_MESSAGE | {"stop_reason": wire}).stop_reason is reason


def test_response_round_trip_through_render():
    resp = parse_response(UPSTREAM_MESSAGE)
    rendered = render_response(resp, "claude-real")
    SDKMessage.model_validate(rendered)
    again = parse_response(rendered)
    assert (again.content, again.tool_calls, again.stop_reason) == (
        resp.content,
        resp.tool_calls,
        resp.stop_reason,
    )
    # Cache writes have no canonical field: they come back as plain input tokens.
    assert again.usage == resp.usage


# --- StreamParser -----------------------------------------------------------------------------

UPSTREAM_EVENTS = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_9",
            "type": "message",
            "role": "assistant",
            "model": "claude-real",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 12,
                "cache_read_input_tokens": 40,
                "cache_creation_input_tokens": 0,
                "output_tokens": 1,
            },
        },
    },
    {"type": "ping"},
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "hm"},
    },
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Okay"}},
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {
        "type": "content_block_start",
        "index": 3,
        "content_block": {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}},
    },
    {"type": "content_block_stop", "index": 3},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 33},
    },
    {"type": "future_event"},
    {"type": "message_stop"},
]
# Anthropic's framing, with CRLF line ends to exercise the SSE parser too.
UPSTREAM_STREAM = b"".join(
    b"event: %s\r\ndata: %s\r\n\r\n" % (e["type"].encode(), orjson.dumps(e))
    for e in UPSTREAM_EVENTS
)


def parse_stream(raw: bytes) -> list:
    sse, parser = SSEParser(), StreamParser()
    return [out for event in sse.feed(raw) + sse.flush() for out in parser.feed(event)]


def test_stream_parser_maps_an_anthropic_stream():
    for event in UPSTREAM_EVENTS:  # the fixture is real protocol, bar two events the SDK skips
        if event["type"] not in ("ping", "future_event"):
            STREAM_EVENT.validate_python(event)
    events = parse_stream(UPSTREAM_STREAM)
    assert events[0].id == "msg_9"
    assert events[0].model == "claude-real"
    assert events[1:] == [
        TextDelta("Okay"),
        ToolCallStart(index=0, id="toolu_1", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city": "Pa'),
        ToolCallDelta(index=0, arguments='ris"}'),
        ToolCallStart(index=1, id="toolu_2", name="noop"),
        Finish(StopReason.TOOL_CALLS),
        UsageReport(Usage(input_tokens=52, output_tokens=33, cached_input_tokens=40)),
    ]


def test_stream_parser_error_event():
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    raw = b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    assert parse_stream(raw) == [StreamError(message="Overloaded", type="overloaded_error")]


def test_stream_parser_reports_invalid_json():
    events = parse_stream(b"event: content_block_delta\ndata: {nope\n\n")
    assert len(events) == 1
    assert isinstance(events[0], StreamError)


def test_rendered_stream_parses_back_to_the_same_events():
    raw = render_stream(StreamRenderer("m"), TOOL_STREAM)
    events = parse_stream(raw)
    assert events[0].id == "msg_resp_1"
    # The renderer coalesces nothing, so deltas come back one for one.
    assert events[1:] == TOOL_STREAM[1:]
