"""Hostile client input, searched for rather than replayed (issue 12, section 8).

One real gateway on loopback (stand-in OpenAI and Anthropic providers behind it, the
embedded router in it) gets generated JSON bodies, near-valid requests with a field
mutated, deep nesting, huge and odd strings, header values of any bytes and bodies around
the size limit, on every endpoint. Whatever it gets, it must answer below 500 (the
stand-ins stay healthy, so no 502/504 is excused), every error must be in the endpoint's
API shape, the log must hold no traceback and no ERROR, and nothing it records may carry
text that cannot be encoded (what took the trace store down before).

`--hypothesis-profile=ci` keeps this to seconds; `thorough` searches much longer.
"""

from __future__ import annotations

import gzip
import json
import logging
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxy_harness import ProxyThread, openai_and_anthropic_config, openai_and_anthropic_upstreams
from raw_http import RawClient, Reply, error_message

from proxy.server.client_input import MAX_BODY_BYTES, READ_HEADERS

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"

# Valid requests with something in every part a mutation can reach: tools, tool calls
# and their results, system prompts, per-request routes.
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CHAT = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ],
    "tools": [OPENAI_TOOL],
    "tool_choice": "auto",
    "max_tokens": 20,
    "temperature": 0.5,
    "stop": ["\n\n"],
    "stream": False,
    "stream_options": {"include_usage": True},
    "user": "u1",
    "metadata": {"k": "v"},
}
MESSAGES = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 20,
    "system": [{"type": "text", "text": "Be brief."}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "P"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny"}],
        },
    ],
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": OPENAI_TOOL["function"]["parameters"],
        }
    ],
    "tool_choice": {"type": "auto"},
    "stop_sequences": ["END"],
    "temperature": 0.5,
    "stream": False,
    "metadata": {"user_id": "u1"},
}
RESPONSES = {
    "model": "gpt-4o",
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
    ],
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": OPENAI_TOOL["function"]["parameters"],
        }
    ],
    "max_output_tokens": 20,
    "store": False,
    "stream": False,
}
ROUTES = [
    {
        "name": "code",
        "description": "writing code",
        "models": ["openai/gpt-4o"],
        "selection_policy": {"prefer": "cheapest"},
    }
]
VALID = {
    "/v1/chat/completions": CHAT,
    "/v1/messages": MESSAGES,
    "/v1/responses": RESPONSES,
    "/routing/v1/chat/completions": {**CHAT, "routing_preferences": ROUTES},
    "/routing/v1/messages": MESSAGES,
    "/routing/v1/responses": RESPONSES,
}
POST_PATHS = list(VALID)
GET_PATHS = ["/v1/models", "/healthz"]
JSON = ("Content-Type", "application/json")


# --- the gateway, once per module -----------------------------------------------------


class _Loud(logging.Handler):
    """Every record that is an error or carries a traceback, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("tests.stand_in"):
            return  # a stand-in upstream's own log (tests/fakes/server_thread.py)
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)


@pytest.fixture(scope="module")
def loud():
    handler = _Loud()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
    assert not handler.records, [r.getMessage() for r in handler.records]


@pytest.fixture(scope="module")
def exchanges() -> list:
    return []


@pytest.fixture(scope="module", params=["model", "agent"])
def client(request, loud, exchanges):
    if request.param == "agent":
        yield from _agent_listener(exchanges)
        return
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as upstreams:
        extra = """\
            model_aliases:
              fast: {target: gpt-4o, fallbacks: [anthropic/claude-sonnet-4-6]}
            routing_preferences:
              - name: code_generation
                description: writing code, functions and unit tests
                models: [anthropic/claude-sonnet-4-6, openai/gpt-4o]
            routing:
              router: {backend: embedded}
            """
        config = openai_and_anthropic_config(
            upstreams, OPENAI_KEY, ANTHROPIC_KEY, retries=1, extra=extra
        )
        with ProxyThread(config, observers=[exchanges.append]) as proxy:
            raw = RawClient(proxy.server.bound[0].port)
            yield raw
            raw.close()


def _agent_listener(exchanges):
    """An agent listener in front of stand-in agents, picked by the embedded router: the
    same edge, and every input that passes it is forwarded to an agent."""
    from agents_harness import agent_config, agent_url, stage

    with stage() as agents:
        config = agent_config(agents, orchestrator=False, backend="embedded")
        with ProxyThread(config, observers=[exchanges.append]) as proxy:
            port = int(agent_url(proxy).rsplit(":", 1)[1])
            raw = RawClient(port)
            yield raw
            raw.close()


def check(loud: _Loud, exchanges: list, path: str, reply: Reply) -> None:
    """What every answer to every input must satisfy."""
    assert reply.status < 500, (path, reply.status, reply.body[:500])
    if reply.status >= 400:
        error_message(path, reply)
    records, loud.records = loud.records, []
    assert not records, [r.getMessage() for r in records]
    while exchanges:
        # What the access log and the trace store get from the edge is encodable text.
        exchange = exchanges.pop()
        for value in (exchange.request_id, exchange.session, exchange.path, exchange.error):
            if value is not None:
                value.encode("utf-8")
        if exchange.requested_model is not None:
            exchange.requested_model.encode("utf-8")


def send(client, loud, exchanges, path: str, body: bytes, headers=()) -> Reply:
    method = "GET" if path in GET_PATHS else "POST"
    reply = client.request(method, path, body, [JSON, *headers])
    check(loud, exchanges, path, reply)
    return reply


# --- strategies ---------------------------------------------------------------------------

# Any code point, lone surrogates included: json.dumps writes those as \udXXX escapes.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities too: json.dumps writes them, JSON has no such thing
    | ANY_TEXT
    | st.sampled_from(["", "true", "1", "gpt-4o", "none", "\x00", "\u2028", "\ud800"])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=16,
)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text as a client might send it: escapes, or raw bytes that may not be UTF-8."""
    if ascii_only:
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON value: dict keys and list indexes, depth first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(value: Any, where: tuple, new: Any, delete: bool) -> Any:
    if not where:
        return new
    head, rest = where[0], where[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = _replace(copy[head], rest, new, delete)
    return copy


@st.composite
def mutated_requests(draw) -> tuple[str, Any]:
    """A valid request for some endpoint with one to three places replaced or removed."""
    path = draw(st.sampled_from(POST_PATHS))
    body: Any = VALID[path]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(_paths(body)))
        delete = bool(where) and draw(st.booleans())
        body = _replace(body, where, None if delete else draw(JSON_VALUES), delete)
    return path, body


# --- the properties -----------------------------------------------------------------------


@given(path=st.sampled_from(POST_PATHS + GET_PATHS), value=JSON_VALUES, ascii_only=st.booleans())
def test_any_json_body(client, loud, exchanges, path, value, ascii_only):
    send(client, loud, exchanges, path, encode(value, ascii_only))


@given(request=mutated_requests(), ascii_only=st.booleans())
def test_near_valid_requests(client, loud, exchanges, request, ascii_only):
    path, body = request
    send(client, loud, exchanges, path, encode(body, ascii_only))


@given(
    path=st.sampled_from(POST_PATHS),
    depth=st.integers(1, 1100),
    where=st.sampled_from(["x", "metadata", "tools", "messages", "input", "model"]),
    kind=st.sampled_from([b"[", b'{"a":']),
)
def test_nesting(client, loud, exchanges, path, depth, where, kind):
    """Nesting up to past orjson's own parse limit (1024), in any top-level field."""
    closer = b"]" if kind == b"[" else b"}"
    deep = kind * depth + (b"" if kind == b"[" else b"1") + closer * depth
    body = orjson.dumps({**VALID[path], where: "\x00deep"}).replace(b'"\\u0000deep"', deep)
    reply = send(client, loud, exchanges, path, body)
    if depth > 254:  # what orjson can write when the body is forwarded
        assert reply.status == 400


@given(
    path=st.sampled_from(POST_PATHS),
    size=st.integers(0, 2 * 1024 * 1024),
    char=st.sampled_from(["a", "é", "\U0001f600", "\\", '"', "\\ud800", "=", "@", " "]),
    where=st.sampled_from(["content", "model", "key"]),
)
def test_huge_strings(client, loud, exchanges, path, size, char, where):
    text = char * (size // max(1, len(char.encode())))
    body: dict = dict(VALID[path])
    if where == "content":
        body["messages" if "messages" in body else "input"] = [{"role": "user", "content": text}]
    elif where == "model":
        body["model"] = text
    else:
        body[text] = 1
    # `\\ud800` stays an escape in the JSON text: a lone surrogate on the wire.
    raw = orjson.dumps(body).replace(b"\\\\ud800", b"\\ud800")
    send(client, loud, exchanges, path, raw)


# Header values as bytes: anything but CR and LF, which would end the header instead;
# and values that mean something to the gateway, so the search gets past the checks.
HEADER_VALUES = st.binary(max_size=64).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
) | st.sampled_from(
    [
        b"",
        b"gpt-4o",
        b"anthropic/claude-sonnet-4-6",
        b"fast",
        b"nope",
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        b"gzip",
        b"deflate, gzip",
        b"identity",
        b"application/json; charset=latin-1",
        "é".encode(),
        b"Bearer sk-test",
    ]
)
HEADER_NAMES = st.sampled_from(
    [
        *READ_HEADERS,
        "content-type",
        "content-encoding",
        "accept",
        "accept-encoding",
        "user-agent",
        "x-plano-anything",
        "x-stainless-lang",
    ]
)


@given(
    path=st.sampled_from(POST_PATHS + GET_PATHS),
    headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=5),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_header_values_of_any_bytes(client, loud, exchanges, path, headers):
    body = b"" if path in GET_PATHS else orjson.dumps(VALID[path])
    send(client, loud, exchanges, path, body, headers)


@given(
    path=st.sampled_from(POST_PATHS + GET_PATHS),
    name=HEADER_NAMES,
    size=st.integers(8000, 8300),
    count=st.integers(1, 140),
)
def test_header_sizes_and_counts(client, loud, exchanges, path, name, size, count):
    """Around aiohttp's limits: 8190 bytes a header line, 128 headers."""
    headers = [(name, b"v" * size)] + [(f"x-filler-{i}", b"1") for i in range(count)]
    body = b"" if path in GET_PATHS else orjson.dumps(VALID[path])
    send(client, loud, exchanges, path, body, headers)


# A few examples whatever the profile: each sends about 32 MiB.
@settings(max_examples=6)
@given(
    path=st.sampled_from(["/v1/chat/completions", "/v1/messages"]),
    offset=st.integers(-2, 2),
    gzipped=st.booleans(),
)
def test_sizes_around_the_body_limit(client, loud, exchanges, path, offset, gzipped):
    """Up to the limit is read (then refused for its content); past it is a 413."""
    head, tail = b'{"model": 5, "pad": "', b'"}'
    size = MAX_BODY_BYTES + offset
    raw = head + b"x" * (size - len(head) - len(tail)) + tail
    headers = [("Content-Encoding", "gzip")] if gzipped else []
    reply = send(client, loud, exchanges, path, gzip.compress(raw, 1) if gzipped else raw, headers)
    assert reply.status == (413 if size > MAX_BODY_BYTES else 400)
