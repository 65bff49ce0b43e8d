"""Client input that used to give a 500 (issue 12, section 3): each is now a 4xx in the
client's own error shape, no provider is called, and the log has no traceback."""

from __future__ import annotations

import gzip
import logging
import time
import tracemalloc
import zlib

import orjson
import pytest
from proxy_harness import ProxyThread, openai_and_anthropic_config, openai_and_anthropic_upstreams
from raw_http import RawClient, error_message

from proxy.server.client_input import MAX_BODY_BYTES, MAX_JSON_DEPTH, READ_HEADERS
from proxy.server.client_input import nested_deeper_than as too_deep

OPENAI_KEY = "test-openai-key-0123456789abcdef"
ANTHROPIC_KEY = "test-anthropic-key-0123456789abcdef"
USER = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o", "messages": USER}
MESSAGES = {"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": USER}
RESPONSES = {"model": "gpt-4o", "input": "hi"}
VALID = {
    "/v1/chat/completions": CHAT,
    "/v1/messages": MESSAGES,
    "/v1/responses": RESPONSES,
    "/routing/v1/chat/completions": CHAT,
    "/routing/v1/messages": MESSAGES,
    "/routing/v1/responses": RESPONSES,
}
JSON = ("Content-Type", "application/json")


@pytest.fixture(scope="module")
def upstreams():
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as pair:
        yield pair


@pytest.fixture(scope="module")
def proxy(upstreams):
    config = openai_and_anthropic_config(upstreams, OPENAI_KEY, ANTHROPIC_KEY)
    with ProxyThread(config) as running:
        yield running


@pytest.fixture
def fakes(upstreams):
    states = [state for state, _ in upstreams.values()]
    for state in states:
        state.clear()
    return states


@pytest.fixture
def client(proxy):
    raw = RawClient(proxy.server.bound[0].port)
    yield raw
    raw.close()


def calls(fakes) -> int:
    return sum(len(state.requests) for state in fakes)


def post(client: RawClient, path: str, body, headers=()) -> tuple[int, str]:
    """(status, error message) of a POST whose answer must be an error in the path's shape."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    reply = client.request("POST", path, raw, [JSON, *headers])
    assert reply.status >= 400, reply
    return reply.status, error_message(path, reply)


def assert_no_traceback(caplog) -> None:
    loud = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not loud, [r.getMessage() for r in loud]


def with_depth(body: dict, depth: int) -> bytes:
    """`body` plus a key `x` that takes it to exactly `depth` levels (the body is level 1);
    written by hand, since orjson itself cannot write more than 254."""
    arrays = depth - 1
    return orjson.dumps(body)[:-1] + b', "x": ' + b"[" * arrays + b"]" * arrays + b"}"


# --- nesting depth -------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 254, 300, 1023])
@pytest.mark.parametrize("path", list(VALID))
def test_deep_json_is_refused_before_any_upstream_call(client, fakes, caplog, path, depth):
    status, message = post(client, path, with_depth(VALID[path], depth))
    assert status == 400
    assert f"at most {MAX_JSON_DEPTH} levels" in message
    assert calls(fakes) == 0
    assert_no_traceback(caplog)


def test_json_at_the_depth_limit_is_forwarded(client, fakes):
    raw = with_depth(CHAT, MAX_JSON_DEPTH)
    reply = client.request("POST", "/v1/chat/completions", raw, [JSON])
    assert reply.status == 200, reply.body
    assert fakes[0].last.body["x"] == orjson.loads(raw)["x"]


def test_a_deep_tool_schema_is_refused(client, fakes, caplog):
    schema = b'{"type": "object", "properties": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}"
    tools = b'"tools": [{"name": "t", "input_schema": ' + schema + b"}]"
    body = orjson.dumps(MESSAGES)[:-1] + b", " + tools + b"}"
    status, message = post(client, "/v1/messages", body)
    assert (status, calls(fakes)) == (400, 0)
    assert f"at most {MAX_JSON_DEPTH} levels" in message
    assert_no_traceback(caplog)


def test_deeper_than_orjson_parses_is_still_a_clean_400(client, fakes):
    status, message = post(client, "/v1/chat/completions", b"[" * 2000 + b"]" * 2000)
    assert (status, calls(fakes)) == (400, 0)
    assert "not valid JSON" in message


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b'{"a": "[[[[[[[[[[[["}', False),  # brackets in a string do not count
        (b'{"a": "\\"[[[[[[[[[[[[\\\\"}', False),  # nor after escaped quotes
        (b'[[["\\\\"]]]', False),
        (b"[" * 10 + b"]" * 10, False),
        (b"[" * 11 + b"]" * 11, True),
        (b'[{"a": [{"b": [{"c": [[[[[]]]]]}]}]}]', True),
    ],
)
def test_depth_is_measured_outside_strings(raw, deep):
    orjson.loads(raw)  # the check runs on JSON orjson has accepted
    assert too_deep(raw, 10) is deep


def _cpu_seconds(check, raw: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(repeat):
            check(raw, MAX_JSON_DEPTH)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize(
    "unit",
    [
        b"[[],[]],",  # brackets only
        b'["\\"\\\\",{}],',  # escapes
        b'"[{[{[{[{",',  # brackets inside strings
        b"[" * 100 + b"]" * 100 + b",",  # deep, just under the limit
    ],
)
def test_depth_check_is_linear(unit):
    """64 KB costs about 64 times 1 KB: the same work as 64 checks of 1 KB (a quadratic
    check would take 64 times that)."""

    def body(size: int) -> bytes:
        return b"[" + unit * (size // len(unit)) + b"0]"

    small, large = body(1024), body(64 * 1024)
    ratio = _cpu_seconds(too_deep, large, 1) / _cpu_seconds(too_deep, small, 64)
    assert ratio < 4, ratio


# --- typed fields ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", 1, 0, "false", [], {}])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/messages"])
def test_stream_must_be_a_boolean(client, fakes, path, value):
    status, message = post(client, path, {**VALID[path], "stream": value})
    assert (status, calls(fakes)) == (400, 0)
    assert "stream" in message
    assert "boolean" in message


def test_a_null_max_completion_tokens_does_not_hide_a_bad_max_tokens(client, fakes):
    body = {**CHAT, "max_completion_tokens": None, "max_tokens": "lots"}
    status, message = post(client, "/v1/chat/completions", body)
    assert (status, calls(fakes)) == (400, 0)
    assert message == "'max_tokens' must be a positive integer"


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/chat/completions", {**CHAT, "messages": [{"role": ["user"]}]}, "got ['user']"),
        ("/v1/responses", {**RESPONSES, "input": [{"role": {"a": 1}}]}, "got {'a': 1}"),
        (
            "/v1/responses",
            {
                **RESPONSES,
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "data:,", "detail": []}],
                    }
                ],
            },
            "got []",
        ),
        ("/v1/messages", {**MESSAGES, "tool_choice": {"type": ["auto"]}}, "got ['auto']"),
        # a client's value is quoted cut short, however large it is
        ("/v1/chat/completions", {**CHAT, "messages": [{"role": "x" * 10**6}]}, "x...x"),
    ],
)
def test_a_list_where_a_name_belongs_is_a_400(client, fakes, caplog, path, body, needle):
    status, message = post(client, path, body)
    assert (status, calls(fakes)) == (400, 0)
    assert needle in message
    assert len(message) < 200
    assert_no_traceback(caplog)


@pytest.mark.parametrize("path", ["/v1/messages", "/routing/v1/messages"])
def test_anthropic_messages_must_not_be_empty(client, fakes, path):
    status, message = post(client, path, {**MESSAGES, "messages": []})
    assert (status, calls(fakes)) == (400, 0)
    assert message == "messages: at least one message is required"


def test_a_lone_surrogate_escape_is_a_400(client, fakes, caplog):
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\\ud800"}]}'
    status, message = post(client, "/v1/chat/completions", body)
    assert (status, calls(fakes)) == (400, 0)
    assert "not valid JSON" in message
    assert_no_traceback(caplog)


def test_a_surrogate_pair_escape_is_forwarded(client, fakes):
    body = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'
    assert client.request("POST", "/v1/chat/completions", body, [JSON]).status == 200
    assert fakes[0].last.body["messages"][0]["content"] == "\U0001f600"


# --- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READ_HEADERS)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/routing/v1/responses"])
def test_a_header_plano_reads_must_be_utf8(client, fakes, caplog, path, name):
    status, message = post(client, path, VALID[path], [(name, b"\xff\xfe")])
    assert (status, calls(fakes)) == (400, 0)
    assert message == f"header {name} is not valid UTF-8"
    assert_no_traceback(caplog)


def test_a_non_ascii_provider_hint_is_an_unknown_model(client, fakes):
    headers = [("x-arch-llm-provider-hint", "é".encode())]
    status, message = post(client, "/v1/chat/completions", CHAT, headers)
    assert (status, calls(fakes)) == (400, 0)
    assert message == "Model 'é' not found in configured providers"


def test_a_bad_request_id_is_not_echoed(client):
    reply = client.request(
        "POST", "/v1/chat/completions", orjson.dumps(CHAT), [JSON, ("x-request-id", b"\xff")]
    )
    assert reply.status == 400
    assert len(reply.headers["x-request-id"]) == 32  # one of Plano's own


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/messages", "anthropic"), ("/v1/chat/completions", "openai"), ("/healthz", "openai")],
)
@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ([("Authorization", "Bearer sk-" + "s" * 9000)], "longer than 8190 bytes"),
        ([(f"x-h{i}", "v") for i in range(200)], "too many headers: at most 128"),
    ],
)
def test_oversized_headers_get_json_and_one_log_line(client, caplog, path, shape, headers, needle):
    caplog.set_level(logging.WARNING)
    reply = client.request("POST", path, b"{}", [JSON, *headers])
    assert reply.status == 400
    payload = reply.json()
    assert (payload.get("type") == "error") is (shape == "anthropic")
    assert needle in error_message(path, reply)
    assert_no_traceback(caplog)
    assert [r.getMessage() for r in caplog.records] == [
        f"malformed HTTP request from 127.0.0.1: {error_message(path, reply)}"
    ]
    # The value (a credential, here) is neither logged nor echoed.
    assert "sss" not in caplog.text
    assert b"sss" not in reply.body


# --- Content-Encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_body_that_does_not_decode_is_a_400(client, fakes, caplog, path, coding):
    raw = orjson.dumps(VALID[path])
    status, message = post(client, path, raw, [("Content-Encoding", coding)])
    assert (status, calls(fakes)) == (400, 0)
    assert message == f"request body could not be decoded as Content-Encoding: {coding}"
    assert_no_traceback(caplog)


@pytest.mark.parametrize(
    "codings", [["br"], ["zstd"], ["snappy"], ["gzip, gzip"], ["gzip", "deflate"], ["x\xff"]]
)
def test_an_unsupported_content_encoding_is_a_415(client, fakes, caplog, codings):
    raw = gzip.compress(orjson.dumps(CHAT))
    headers = [("Content-Encoding", c.encode("latin-1")) for c in codings]
    status, message = post(client, "/v1/chat/completions", raw, headers)
    assert (status, calls(fakes)) == (415, 0)
    assert message.startswith("Content-Encoding is not supported")
    assert_no_traceback(caplog)


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", bytes),
        ("GZIP", gzip.compress),
    ],
)
def test_supported_content_encodings_are_decoded(client, fakes, coding, compress):
    raw = compress(orjson.dumps(CHAT))
    headers = [JSON, ("Content-Encoding", coding)]
    reply = client.request("POST", "/v1/chat/completions", raw, headers)
    assert reply.status == 200, reply.body
    assert fakes[0].last.body["messages"] == USER


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """256 MiB of zeros in about 250 KB: eight times the body limit once decompressed."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(256)) + compressor.flush()


def test_a_gzip_bomb_stops_at_the_body_limit(client, fakes, gzip_bomb):
    tracemalloc.start()
    try:
        status, message = post(
            client, "/v1/chat/completions", gzip_bomb, [("Content-Encoding", "gzip")]
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (status, calls(fakes)) == (413, 0)
    assert message == f"request body is larger than {MAX_BODY_BYTES} bytes"
    # Decompressed a piece at a time and counted against the limit, never held whole.
    assert peak < 2 * MAX_BODY_BYTES, peak


# --- a handler that fails: still JSON, traceback kept (it is a bug) -----------------------


async def test_an_unhandled_handler_error_is_json_in_the_paths_shape(caplog):
    import aiohttp
    from aiohttp import web

    from proxy.server.protocol import ModelAppRunner

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application()
    app.router.add_post("/v1/messages", broken)
    app.router.add_post("/v1/chat/completions", broken)
    runner = ModelAppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:
            for path, shape in [("/v1/messages", "error"), ("/v1/chat/completions", None)]:
                async with session.post(f"http://127.0.0.1:{port}{path}", json={}) as reply:
                    payload = await reply.json()
                assert reply.status == 500
                assert payload.get("type") == shape
    finally:
        await runner.cleanup()
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError] * 2


@pytest.mark.parametrize(
    ("read", "path"),
    [
        (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n", "/v1/messages"),
        # the end of a body answered before it was read, then the next request
        (b'"}]}POST /v1/messages HTTP/1.1\r\nx-a: \x00\r\n', "/v1/messages"),
        (b"GET /v1/messages?q=" + b"a" * 9000, "/v1/messages?q=" + "a" * 49),
        (b"POST /v1/messages HTTP/1.1\r\nUser-Agent: x HTTP/1.1\r\n", "/v1/messages"),
        (b'{"model": "x"}', None),
    ],
)
def test_the_path_of_an_unparseable_request_is_found_in_the_read(read, path):
    from proxy.server.protocol import _last_request_path

    assert _last_request_path(read) == path


# --- a body that never finishes arriving -----------------------------------------------


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_body_sent_too_slowly_is_a_408_in_the_paths_shape(proxy, fakes, monkeypatch, path):
    import socket

    from proxy.server import client_input

    monkeypatch.setattr(client_input, "BODY_READ_TIMEOUT_S", 0.5)
    with socket.create_connection(("127.0.0.1", proxy.server.bound[0].port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": ')  # then nothing more
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 408 " in status_line
    body = orjson.loads(rest.partition(b"\r\n\r\n")[2])
    message = body["error"]["message"]
    assert "did not arrive within 0.5 s" in message
    if path == "/v1/messages":
        assert body["type"] == "error"
    assert calls(fakes) == 0
