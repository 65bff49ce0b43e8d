"""The OpenAI Responses codec: exact shapes, streams, and what the official SDK accepts."""

from __future__ import annotations

import httpx2 as httpx  # the HTTP client the openai SDK 3.x is built on
import openai
import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
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
from proxy.wire.openai_responses import (
    StreamRenderer,
    new_response_id,
    parse_request,
    previous_response_id,
    render_error,
    render_response,
    response_messages,
    wants_store,
)
from proxy.wire.sse import SSEParser

STREAM_EVENT = TypeAdapter(ResponseStreamEvent)
RESP_ID = "resp_0123456789abcdef"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}
PNG_URL = "data:image/png;base64,iVBORw0KGgo="


def body(**fields) -> dict:
    return {"model": "gpt-x", "input": "hi"} | fields


def events_of(raw: bytes) -> list[tuple[str | None, dict]]:
    """(event name, JSON data) of each SSE event, each validated against the SDK's union."""
    parser = SSEParser()
    out = []
    for event in parser.feed(raw) + parser.flush():
        data = orjson.loads(event.data)
        STREAM_EVENT.validate_python(data)
        assert event.event == data["type"]
        out.append((event.event, data))
    return out


def render_stream(renderer: StreamRenderer, events: list, finish: bool = True) -> bytes:
    raw = b"".join(renderer.render(event) for event in events)
    return raw + renderer.finish() if finish else raw


def text_and_tool_events() -> list:
    return [
        StreamStart(id="up-1", model="upstream-model", created=1_700_000_000),
        TextDelta("Let me "),
        TextDelta("check."),
        ToolCallStart(index=0, id="call_a", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city":'),
        ToolCallDelta(index=0, arguments='"Paris"}'),
        ToolCallStart(index=1, id="call_b", name="get_weather"),
        ToolCallDelta(index=1, arguments='{"city":"Rome"}'),
        Finish(StopReason.TOOL_CALLS),
        UsageReport(Usage(input_tokens=30, output_tokens=12, cached_input_tokens=8)),
    ]


def sdk_client(handler) -> openai.OpenAI:
    transport = httpx.MockTransport(handler)
    return openai.OpenAI(
        api_key="test",
        base_url="http://proxy.test/v1",
        http_client=httpx.Client(transport=transport),
        max_retries=0,
    )


def serve(payload: bytes, content_type: str, seen: list | None = None):
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(orjson.loads(request.content))
        return httpx.Response(200, content=payload, headers={"content-type": content_type})

    return handler


# --- parse_request ----------------------------------------------------------------------


def test_string_input_with_all_parameters():
    req = parse_request(
        body(
            instructions="Be brief.",
            input="Hello",
            max_output_tokens=100,
            temperature=0.5,
            top_p=1,
            stream=True,
            user="u-1",
            metadata={"k": "v"},
            parallel_tool_calls=False,
            store=False,
            reasoning={"effort": "low"},
            include=[],
        )
    )
    assert req == ChatRequest(
        model="gpt-x",
        messages=[
            Message(role="system", content=[TextPart("Be brief.")]),
            Message(role="user", content=[TextPart("Hello")]),
        ],
        parallel_tool_calls=False,
        max_tokens=100,
        temperature=0.5,
        top_p=1.0,
        stream=True,
        user="u-1",
        metadata={"k": "v"},
    )


def test_message_items_in_every_form():
    req = parse_request(
        body(
            input=[
                {"role": "developer", "content": "Rules."},
                {"role": "system", "content": [{"type": "input_text", "text": "More rules."}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Q"}],
                },
                {
                    "type": "message",
                    "id": "msg_1",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "A", "annotations": []}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "user", "content": "Q2"},
            ]
        )
    )
    assert req.messages == [
        Message(role="system", content=[TextPart("Rules.")]),
        Message(role="system", content=[TextPart("More rules.")]),
        Message(role="user", content=[TextPart("Q")]),
        Message(role="assistant", content=[TextPart("A")]),
        Message(role="user", content=[TextPart("Q2")]),
    ]


def test_function_calls_merge_into_the_assistant_turn_and_outputs_become_tool_messages():
    req = parse_request(
        body(
            input=[
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking."},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_a",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                    "status": "completed",
                },
                {
                    "type": "function_call",
                    "call_id": "call_b",
                    "name": "get_weather",
                    "arguments": '{"city":"Rome"}',
                },
                {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
                {
                    "type": "function_call_output",
                    "call_id": "call_b",
                    "output": [{"type": "input_text", "text": "21C"}],
                },
                {"type": "function_call", "call_id": "call_c", "name": "f", "arguments": "{}"},
            ]
        )
    )
    assert req.messages == [
        Message(role="user", content=[TextPart("Weather in Paris and Rome?")]),
        Message(
            role="assistant",
            content=[TextPart("Checking.")],
            tool_calls=[
                ToolCall("call_a", "get_weather", '{"city":"Paris"}'),
                ToolCall("call_b", "get_weather", '{"city":"Rome"}'),
            ],
        ),
        Message(role="tool", content=[TextPart("18C")], tool_call_id="call_a"),
        Message(role="tool", content=[TextPart("21C")], tool_call_id="call_b"),
        Message(role="assistant", tool_calls=[ToolCall("call_c", "f", "{}")]),
    ]


def test_images_by_url_and_data_url():
    req = parse_request(
        body(
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {
                            "type": "input_image",
                            "image_url": "https://x.test/a.jpg",
                            "detail": "low",
                        },
                        {"type": "input_image", "image_url": PNG_URL},
                    ],
                }
            ]
        )
    )
    assert req.messages[0].content == [
        TextPart("What is this?"),
        ImagePart(url="https://x.test/a.jpg", detail="low"),
        ImagePart(url=PNG_URL),
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ({"type": "function", "name": "get_weather"}, ToolChoice("tool", "get_weather")),
        (None, None),
    ],
)
def test_flat_tools_and_tool_choice(choice, expected):
    minimal = {"type": "function", "name": "ping"}
    req = parse_request(body(tools=[WEATHER, minimal], tool_choice=choice))
    assert req.tools == [
        Tool("get_weather", "Current weather", WEATHER["parameters"]),
        Tool("ping"),
    ]
    assert req.tool_choice == expected


def test_previous_response_id_and_store():
    assert previous_response_id(body()) is None
    assert previous_response_id(body(previous_response_id=RESP_ID)) == RESP_ID
    assert wants_store(body()) is True
    assert wants_store(body(store=False)) is False
    # A continuation may add nothing but instructions.
    assert parse_request(body(input=[], previous_response_id=RESP_ID)).messages == []
    assert new_response_id().startswith("resp_")


@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        ({"model": None}, "'model' is required", "model"),
        ({"input": None}, "'input' is required", "input"),
        ({"input": {"role": "user"}}, "'input' must be a string or an array of items", "input"),
        ({"input": []}, "'input' must not be empty", "input"),
        ({"input": ["hi"]}, "input[0] must be an object", "input[0]"),
        ({"input": [{"content": "x"}]}, "input[0] must be a message or an item", "input[0]"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role must be one of", None),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content must be a string", None),
        (
            {"input": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
            "input[0].content[0] must be an input_text, output_text or input_image part",
            "input[0].content[0]",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text is required and must be a string",
            "input[0].content[0].text",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "images by file_id are not supported by Plano",
            "input[0].content[0].file_id",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": {"url": "https://x"}}],
                    }
                ]
            },
            "input[0].content[0].image_url must be a string",
            "input[0].content[0].image_url",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "content type 'input_file' is not supported by Plano",
            "input[0].content[0].type",
        ),
        (
            {"input": [{"type": "web_search_call", "id": "ws_1"}]},
            "input item type 'web_search_call' is not supported by Plano",
            "input[0].type",
        ),
        (
            {"input": [{"type": "item_reference", "id": "msg_1"}]},
            "input item type 'item_reference' is not supported",
            "input[0].type",
        ),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id is required",
            "input[0].call_id",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
            "input[0].arguments is required and must be a string",
            "input[0].arguments",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output must be a string or an array",
            "input[0].output",
        ),
        ({"instructions": 3}, "'instructions' must be a string", "instructions"),
        ({"tools": {}}, "'tools' must be an array", "tools"),
        (
            {"tools": [{"type": "web_search"}]},
            "tools[0]: tool type 'web_search' is not supported by Plano",
            "tools[0].type",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f"}}]},
            "tools[0].name is required (Responses tools are flat",
            "tools[0].name",
        ),
        (
            {"tools": [WEATHER | {"parameters": "x"}]},
            "tools[0].parameters must be an object",
            "tools[0].parameters",
        ),
        ({"tool_choice": "any"}, "'tool_choice' must be auto, none, required", "tool_choice"),
        (
            {"tool_choice": {"type": "function", "function": {"name": "f"}}},
            "'tool_choice' must be",
            "tool_choice",
        ),
        ({"max_output_tokens": 0}, "'max_output_tokens' must be a positive integer", None),
        ({"max_output_tokens": 1.5}, "'max_output_tokens' must be a positive integer", None),
        ({"temperature": "hot"}, "'temperature' must be a number", "temperature"),
        ({"stream": "yes"}, "'stream' must be a boolean", "stream"),
        ({"parallel_tool_calls": 1}, "'parallel_tool_calls' must be a boolean", None),
        ({"metadata": []}, "'metadata' must be an object", "metadata"),
        ({"store": "no"}, "'store' must be a boolean", "store"),
        ({"previous_response_id": "abc"}, "'previous_response_id' must be a response id", None),
        (
            {"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}},
            "'text.format' of type 'json_schema' is not supported by Plano",
            "text.format",
        ),
        ({"conversation": "conv_1"}, "'conversation' is not supported by Plano", "conversation"),
        ({"background": True}, "'background' responses are not supported", "background"),
    ],
)
def test_wire_errors_name_the_field(fields, message, param):
    with pytest.raises(WireError) as caught:
        parse_request(body(**fields))
    assert message in caught.value.message
    if param is not None:
        assert caught.value.param == param


def test_plain_text_format_is_accepted():
    assert parse_request(body(text={"format": {"type": "text"}, "verbosity": "low"})).model


# --- render_response --------------------------------------------------------------------


def test_render_text_response_exact_shape():
    resp = ChatResponse(
        id="up-1",
        model="upstream",
        content=[TextPart("Hello!")],
        usage=Usage(input_tokens=10, output_tokens=3, cached_input_tokens=4, reasoning_tokens=1),
        created=1_700_000_000,
    )
    request = body(instructions="Be nice.", temperature=0.2, metadata={"a": "b"}, store=False)
    out = render_response(resp, "gpt-x", RESP_ID, request)
    parsed = Response.model_validate(out)
    assert parsed.output_text == "Hello!"
    assert "output_text" not in out  # an SDK property, never a JSON field
    assert out["id"] == RESP_ID
    assert out["object"] == "response"
    assert out["status"] == "completed"
    assert out["created_at"] == 1_700_000_000
    assert out["model"] == "gpt-x"
    assert out["error"] is None
    assert out["incomplete_details"] is None
    [item] = out["output"]
    assert item["id"].startswith("msg_")
    assert item | {"id": None} == {
        "type": "message",
        "id": None,
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}],
    }
    assert out["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 13,
    }
    assert parsed.usage is not None
    assert parsed.usage.input_tokens_details.cached_tokens == 4
    # Echoed request settings.
    assert out["instructions"] == "Be nice."
    assert out["temperature"] == 0.2
    assert out["top_p"] is None
    assert out["metadata"] == {"a": "b"}
    assert out["store"] is False
    assert out["parallel_tool_calls"] is True
    assert out["tool_choice"] == "auto"
    assert out["tools"] == []
    assert out["text"] == {"format": {"type": "text"}}
    assert out["truncation"] == "disabled"
    assert out["previous_response_id"] is None


def test_render_tool_calls_and_echoed_tools():
    resp = ChatResponse(
        id="up-1",
        model="upstream",
        tool_calls=[
            ToolCall("call_a", "get_weather", '{"city":"Paris"}'),
            ToolCall("call_b", "get_weather", '{"city":"Rome"}'),
        ],
        stop_reason=StopReason.TOOL_CALLS,
    )
    request = body(
        tools=[WEATHER, {"type": "function", "name": "ping"}],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        max_output_tokens=50,
    )
    out = render_response(resp, "gpt-x", RESP_ID, request, previous_response_id="resp_prev")
    parsed = Response.model_validate(out)
    assert parsed.output_text == ""
    assert [item["type"] for item in out["output"]] == ["function_call", "function_call"]
    first = out["output"][0]
    assert first["id"].startswith("fc_")
    assert first | {"id": None} == {
        "type": "function_call",
        "id": None,
        "call_id": "call_a",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
        "status": "completed",
    }
    assert out["tools"] == [
        WEATHER,
        {
            "type": "function",
            "name": "ping",
            "description": None,
            "parameters": None,
            "strict": None,
        },
    ]
    assert out["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert out["parallel_tool_calls"] is False
    assert out["max_output_tokens"] == 50
    assert out["previous_response_id"] == "resp_prev"
    assert out["usage"] is None


def test_previous_response_id_falls_back_to_the_request():
    resp = ChatResponse(id="x", model="m", content=[TextPart("ok")])
    out = render_response(resp, "gpt-x", RESP_ID, body(previous_response_id="resp_abc"))
    assert out["previous_response_id"] == "resp_abc"


def test_length_renders_incomplete():
    resp = ChatResponse(
        id="x", model="m", content=[TextPart("Once upon")], stop_reason=StopReason.LENGTH
    )
    out = render_response(resp, "gpt-x", RESP_ID, body(max_output_tokens=2))
    Response.model_validate(out)
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out["output"][0]["status"] == "incomplete"
    assert out["completed_at"] is None


@pytest.mark.parametrize(
    ("stop", "status", "reason"),
    [
        (StopReason.CONTENT_FILTER, "incomplete", "content_filter"),
        (StopReason.STOP_SEQUENCE, "completed", None),
        (StopReason.ERROR, "failed", None),
    ],
)
def test_other_stop_reasons(stop, status, reason):
    resp = ChatResponse(id="x", model="m", content=[TextPart("a")], stop_reason=stop)
    out = render_response(resp, "gpt-x", RESP_ID, body())
    Response.model_validate(out)
    assert out["status"] == status
    assert (out["incomplete_details"] or {}).get("reason") == reason
    if status == "failed":
        assert out["error"]["code"] == "server_error"


def test_response_messages():
    calls = [ToolCall("call_a", "f", "{}")]
    resp = ChatResponse(id="x", model="m", content=[TextPart("a"), TextPart("b")], tool_calls=calls)
    assert response_messages(resp) == [
        Message(role="assistant", content=[TextPart("ab")], tool_calls=calls)
    ]
    assert response_messages(ChatResponse(id="x", model="m", tool_calls=calls)) == [
        Message(role="assistant", tool_calls=calls)
    ]
    assert response_messages(ChatResponse(id="x", model="m")) == []


def test_render_error():
    assert render_error(400, "bad", param="input") == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": "input",
            "code": None,
        }
    }
    assert render_error(502, "upstream down")["error"]["type"] == "api_error"


# --- StreamRenderer ---------------------------------------------------------------------


def test_stream_text_and_tool_calls_exact_protocol():
    renderer = StreamRenderer("gpt-x", RESP_ID, body(tools=[WEATHER]))
    events = events_of(render_stream(renderer, text_and_tool_events()))
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    data = [d for _, d in events]
    created = data[0]["response"]
    assert created["id"] == RESP_ID
    assert created["status"] == "in_progress"
    assert created["output"] == []
    assert created["created_at"] == 1_700_000_000
    assert created["usage"] is None
    message_added = data[2]
    assert message_added["output_index"] == 0
    assert message_added["item"]["content"] == []
    assert message_added["item"]["status"] == "in_progress"
    message_id = message_added["item"]["id"]
    assert data[4] | {"sequence_number": 0} == {
        "type": "response.output_text.delta",
        "sequence_number": 0,
        "item_id": message_id,
        "output_index": 0,
        "content_index": 0,
        "delta": "Let me ",
        "logprobs": [],
    }
    assert data[6]["text"] == "Let me check."
    assert data[8]["item"]["status"] == "completed"
    call_added = data[9]
    assert call_added["output_index"] == 1
    assert call_added["item"]["arguments"] == ""
    assert call_added["item"]["call_id"] == "call_a"
    assert data[10]["item_id"] == call_added["item"]["id"]
    assert data[12]["arguments"] == '{"city":"Paris"}'
    assert data[16]["output_index"] == 2
    final = data[-1]["response"]
    Response.model_validate(final)
    assert final["status"] == "completed"
    assert [item["type"] for item in final["output"]] == [
        "message",
        "function_call",
        "function_call",
    ]
    assert final["output"][2]["arguments"] == '{"city":"Rome"}'
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 8
    assert final["usage"]["total_tokens"] == 42
    assert final["tools"] == [WEATHER]


def test_stream_result_is_the_accumulated_response():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    render_stream(renderer, text_and_tool_events())
    assert renderer.result == ChatResponse(
        id=RESP_ID,
        model="gpt-x",
        content=[TextPart("Let me check.")],
        tool_calls=[
            ToolCall("call_a", "get_weather", '{"city":"Paris"}'),
            ToolCall("call_b", "get_weather", '{"city":"Rome"}'),
        ],
        stop_reason=StopReason.TOOL_CALLS,
        usage=Usage(input_tokens=30, output_tokens=12, cached_input_tokens=8),
        created=1_700_000_000,
    )


def test_terminal_event_waits_for_usage_and_is_sent_once():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    head = render_stream(
        renderer, [StreamStart("u", "m"), TextDelta("hi"), Finish(StopReason.END)], False
    )
    assert b"response.completed" not in head
    assert b"response.output_item.done" in head  # items close at Finish, usage or not
    tail = renderer.render(UsageReport(Usage(input_tokens=5, output_tokens=1)))
    [(name, data)] = events_of(tail)
    assert name == "response.completed"
    assert data["response"]["usage"]["total_tokens"] == 6
    assert renderer.finish() == b""
    assert renderer.render(TextDelta("late")) == b""


def test_finish_ends_a_stream_without_usage_or_finish():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    raw = render_stream(renderer, [StreamStart("u", "m"), TextDelta("hi"), Finish(StopReason.END)])
    events = events_of(raw)
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["response"]["usage"] is None
    assert sum(name == "response.completed" for name, _ in events) == 1

    cut = StreamRenderer("gpt-x", RESP_ID, body())
    events = events_of(render_stream(cut, [StreamStart("u", "m"), TextDelta("partial")]))
    assert [name for name, _ in events][-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]

    empty = StreamRenderer("gpt-x", RESP_ID, body())
    events = events_of(empty.finish())
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.completed",
    ]
    assert events[-1][1]["response"]["output"] == []


def test_usage_before_finish_completes_at_finish():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    raw = render_stream(
        renderer,
        [StreamStart("u", "m"), TextDelta("x"), UsageReport(Usage(1, 1)), Finish(StopReason.END)],
        finish=False,
    )
    assert events_of(raw)[-1][0] == "response.completed"
    assert renderer.finish() == b""


def test_stream_length_is_incomplete():
    renderer = StreamRenderer("gpt-x", RESP_ID, body(max_output_tokens=3))
    raw = render_stream(
        renderer,
        [
            StreamStart("u", "m"),
            TextDelta("Once upon"),
            Finish(StopReason.LENGTH),
            UsageReport(Usage(4, 3)),
        ],
    )
    events = events_of(raw)
    assert events[-1][0] == "response.incomplete"
    response = events[-1][1]["response"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"
    assert response["max_output_tokens"] == 3
    assert renderer.result.stop_reason is StopReason.LENGTH


def test_stream_error_is_response_failed():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    raw = render_stream(
        renderer,
        [StreamStart("u", "m"), TextDelta("par"), StreamError("upstream timed out")],
        finish=False,
    )
    events = events_of(raw)
    name, data = events[-1]
    assert name == "response.failed"
    assert data["response"]["status"] == "failed"
    assert data["response"]["error"] == {"code": "server_error", "message": "upstream timed out"}
    assert data["response"]["output"][0]["status"] == "incomplete"
    assert data["response"]["output"][0]["content"][0]["text"] == "par"
    assert renderer.finish() == b""
    assert renderer.render(TextDelta("more")) == b""
    assert renderer.result.stop_reason is StopReason.ERROR


def test_stream_error_before_anything_still_opens_the_response():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    events = events_of(renderer.render(StreamError("no upstream")))
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]


def test_late_delta_keeps_its_call_index():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    raw = render_stream(
        renderer,
        [
            StreamStart("u", "m"),
            ToolCallStart(0, "call_a", "f"),
            ToolCallStart(1, "call_b", "g"),
            ToolCallDelta(0, "{}"),
            ToolCallDelta(1, '{"x":1}'),
            ToolCallDelta(7, "orphan"),
            Finish(StopReason.TOOL_CALLS),
        ],
    )
    events = events_of(raw)
    deltas = [d for name, d in events if name == "response.function_call_arguments.delta"]
    assert [(d["output_index"], d["delta"]) for d in deltas] == [(0, "{}"), (1, '{"x":1}')]
    final = events[-1][1]["response"]
    assert [item["arguments"] for item in final["output"]] == ["{}", '{"x":1}']


def test_text_after_a_tool_call_opens_a_new_message():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    raw = render_stream(
        renderer,
        [
            StreamStart("u", "m"),
            ToolCallStart(0, "call_a", "f"),
            ToolCallDelta(0, "{}"),
            TextDelta("done"),
            Finish(StopReason.END),
        ],
    )
    final = events_of(raw)[-1][1]["response"]
    assert [item["type"] for item in final["output"]] == ["function_call", "message"]
    assert renderer.result.text == "done"


# --- the official SDK over a mock transport ---------------------------------------------


def test_sdk_non_streaming_create():
    resp = ChatResponse(
        id="x",
        model="m",
        content=[TextPart("Paris is sunny.")],
        tool_calls=[ToolCall("call_a", "get_weather", '{"city":"Paris"}')],
        stop_reason=StopReason.TOOL_CALLS,
        usage=Usage(input_tokens=9, output_tokens=4, cached_input_tokens=2),
    )
    request = body(tools=[WEATHER])
    payload = orjson.dumps(render_response(resp, "gpt-x", RESP_ID, request))
    client = sdk_client(serve(payload, "application/json"))
    result = client.responses.create(model="gpt-x", input="hi", tools=[WEATHER])
    assert result.id == RESP_ID
    assert result.output_text == "Paris is sunny."
    calls = [item for item in result.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}')
    ]
    assert result.usage is not None
    assert result.usage.input_tokens_details.cached_tokens == 2


def test_sdk_output_replayed_as_input_round_trips():
    """`input += response.output`, the SDK's own multi-turn idiom, parses back."""
    resp = ChatResponse(
        id="x",
        model="m",
        content=[TextPart("Checking.")],
        tool_calls=[ToolCall("call_a", "get_weather", '{"city":"Paris"}')],
        stop_reason=StopReason.TOOL_CALLS,
    )
    payload = orjson.dumps(render_response(resp, "gpt-x", RESP_ID, body()))
    seen: list[dict] = []
    client = sdk_client(serve(payload, "application/json", seen))
    first = client.responses.create(model="gpt-x", input="Weather in Paris?")
    history: list = [{"role": "user", "content": "Weather in Paris?"}, *first.output]
    history.append({"type": "function_call_output", "call_id": "call_a", "output": "18C"})
    client.responses.create(model="gpt-x", input=history, previous_response_id=None)
    req = parse_request(seen[-1])
    assert req.messages == [
        Message(role="user", content=[TextPart("Weather in Paris?")]),
        Message(
            role="assistant",
            content=[TextPart("Checking.")],
            tool_calls=[ToolCall("call_a", "get_weather", '{"city":"Paris"}')],
        ),
        Message(role="tool", content=[TextPart("18C")], tool_call_id="call_a"),
    ]


def test_sdk_image_request_parses():
    seen: list[dict] = []
    payload = orjson.dumps(
        render_response(
            ChatResponse(id="x", model="m", content=[TextPart("a cat")]), "g", RESP_ID, body()
        )
    )
    client = sdk_client(serve(payload, "application/json", seen))
    client.responses.create(
        model="gpt-x",
        instructions="Describe.",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What?"},
                    {"type": "input_image", "image_url": PNG_URL, "detail": "auto"},
                ],
            }
        ],
    )
    req = parse_request(seen[0])
    assert req.messages == [
        Message(role="system", content=[TextPart("Describe.")]),
        Message(role="user", content=[TextPart("What?"), ImagePart(PNG_URL, "auto")]),
    ]


def test_sdk_streaming_create_iterates_every_event():
    renderer = StreamRenderer("gpt-x", RESP_ID, body(tools=[WEATHER]))
    raw = render_stream(renderer, text_and_tool_events())
    client = sdk_client(serve(raw, "text/event-stream"))
    stream = client.responses.create(model="gpt-x", input="hi", tools=[WEATHER], stream=True)
    kinds = [event.type for event in stream]
    assert kinds == [name for name, _ in events_of(raw)]


def test_sdk_stream_helper_final_response():
    renderer = StreamRenderer("gpt-x", RESP_ID, body(tools=[WEATHER]))
    raw = render_stream(renderer, text_and_tool_events())
    client = sdk_client(serve(raw, "text/event-stream"))
    with client.responses.stream(model="gpt-x", input="hi", tools=[WEATHER]) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Let me ", "check."]
    assert final.id == RESP_ID
    assert final.output_text == "Let me check."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_weather", '{"city":"Rome"}'),
    ]
    assert final.usage is not None
    assert final.usage.total_tokens == 42


def test_sdk_stream_helper_sees_response_failed():
    renderer = StreamRenderer("gpt-x", RESP_ID, body())
    raw = render_stream(
        renderer, [StreamStart("u", "m"), TextDelta("par"), StreamError("boom")], finish=False
    )
    client = sdk_client(serve(raw, "text/event-stream"))
    with client.responses.stream(model="gpt-x", input="hi") as stream:
        events = list(stream)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert events[-1].response.error.message == "boom"


def test_a_long_stream_renders_in_linear_time() -> None:
    # Each delta was added to its item's string, which copied it every time: 8x the deltas
    # took ~30x the time. Process time, the best of three runs, with a generous margin.
    import time

    def cost(deltas: int) -> float:
        best = float("inf")
        for _ in range(3):
            renderer = StreamRenderer("m", RESP_ID, {})
            started = time.process_time()
            for _ in range(deltas):
                renderer.render(TextDelta("word"))
            renderer.render(Finish(StopReason.END))
            renderer.finish()
            best = min(best, time.process_time() - started)
        assert renderer.result.text == "word" * deltas
        return best

    small, large = cost(25_000), cost(200_000)
    assert large < 16 * small, (small, large)
