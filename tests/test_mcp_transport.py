"""MCP filters (proxy.filters.mcp_transport) against a real MCP server built with the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import orjson
import pytest

from proxy.filters.mcp_transport import McpFilterTransport
from proxy.filters.verdict import Decision, FilterFailure
from tests.fakes.mcp_filter_server import McpFilterServer

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "my secret plan"}]}
RAW = orjson.dumps(BODY)
PATH = "/v1/chat/completions"
HEADERS = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "x-request-id": "req-42",
    "authorization": "Bearer sk-never-forwarded",
}


@pytest.fixture
async def server():
    async with McpFilterServer() as srv:
        yield srv


@pytest.fixture
async def make(server):
    made: list[McpFilterTransport] = []

    def build(tool: str, **options) -> McpFilterTransport:
        made.append(McpFilterTransport(server.url, tool, **options))
        return made[-1]

    yield build
    for transport in made:
        await transport.close()


async def test_pass_sends_upstreams_arguments_and_the_trace_headers(server, make):
    verdict = await make("passthrough").call(RAW, PATH, HEADERS, 5)
    assert verdict.decision is Decision.PASS
    assert verdict.body is None
    assert server.calls == [{"tool": "passthrough", "body": BODY, "path": PATH}]
    call_post = server.posts[-1]
    assert call_post["traceparent"] == HEADERS["traceparent"]
    assert call_post["x-request-id"] == "req-42"
    assert all("authorization" not in post for post in server.posts)


async def test_rewrite_is_a_modify_with_the_new_body(make):
    verdict = await make("rewrite").call(RAW, PATH, {}, 5)
    assert verdict.decision is Decision.MODIFY
    assert orjson.loads(verdict.body)["messages"][0]["content"] == "my [redacted] plan"


async def test_structured_content_result_is_the_new_body(make):
    verdict = await make("structured").call(RAW, PATH, {}, 5)
    assert verdict.decision is Decision.MODIFY
    assert orjson.loads(verdict.body) == dict(BODY, model="rewritten-by-structured")


async def test_is_error_blocks_with_400_and_the_tools_text(make):
    verdict = await make("block").call(RAW, PATH, {}, 5)
    assert verdict.decision is Decision.BLOCK
    assert (verdict.status, verdict.message) == (400, "blocked by policy: no secrets")


@pytest.mark.parametrize("tool", ["garbage", "garbage_text", "empty", "wrong_type"])
async def test_a_reply_that_is_not_a_body_is_a_malformed_reply(make, tool):
    with pytest.raises(FilterFailure) as failure:
        await make(tool).call(RAW, PATH, {}, 5)
    assert failure.value.outcome == "malformed reply"
    assert tool in failure.value.message


async def test_a_text_body_goes_as_text_and_comes_back_as_text(make):
    chunk = b'data: {"choices":[{"delta":{"content":"a secret"}}]}\n\n'
    transport = make("passthrough")
    assert (await transport.call(chunk, PATH, {}, 5)).decision is Decision.PASS
    verdict = await make("rewrite_text").call(chunk, PATH, {}, 5)
    assert verdict.decision is Decision.MODIFY
    assert verdict.body == chunk.replace(b"secret", b"[redacted]")


async def test_a_huge_result_is_refused_not_held(make):
    transport = make("huge", max_reply_bytes=1024 * 1024)
    with pytest.raises(FilterFailure) as failure:
        await transport.call(RAW, PATH, {}, 5)
    assert failure.value.outcome == "malformed reply"
    assert "larger than 1048576 bytes" in failure.value.message
    # The session survives it: the next call on it passes.
    transport.tool = "passthrough"
    assert (await transport.call(RAW, PATH, {}, 5)).decision is Decision.PASS


async def test_a_tool_sleeping_past_the_timeout_is_a_timeout(server, make):
    transport = make("slow")
    started = time.monotonic()
    with pytest.raises(FilterFailure) as failure:
        await transport.call(RAW, PATH, {}, 0.3)
    assert failure.value.outcome == "timeout"
    assert "0.3s" in failure.value.message
    assert time.monotonic() - started < 2
    transport.tool = "passthrough"
    assert (await transport.call(RAW, PATH, {}, 5)).decision is Decision.PASS
    assert server.sessions_started == 1


async def test_one_session_across_calls_and_20_concurrent_calls(server, make):
    transport = make("rewrite")
    verdicts = await asyncio.gather(
        *[
            transport.call(
                orjson.dumps(dict(BODY, user=f"u{i}")), PATH, {"x-request-id": f"r{i}"}, 10
            )
            for i in range(20)
        ]
    )
    assert [orjson.loads(v.body)["user"] for v in verdicts] == [f"u{i}" for i in range(20)]
    for _ in range(5):
        await transport.call(RAW, PATH, {}, 5)
    assert server.sessions_started == 1
    assert {p["x-request-id"] for p in server.posts if "x-request-id" in p} == {
        f"r{i}" for i in range(20)
    }


async def test_a_restarted_server_gets_a_new_session_and_the_call_is_retried(server, make):
    transport = make("passthrough")
    await transport.call(RAW, PATH, {}, 5)
    await server.stop()
    await server.start()  # same port, no memory of the old session: 404 on its id
    verdict = await transport.call(RAW, PATH, {}, 5)
    assert verdict.decision is Decision.PASS
    assert server.sessions_started == 2
    assert len(server.calls) == 2  # the tool ran once per call: the 404'd one never reached it


async def test_server_down_then_back(server, make):
    transport = make("passthrough")
    await transport.call(RAW, PATH, {}, 5)
    await server.stop()
    with pytest.raises(FilterFailure) as failure:
        await transport.call(RAW, PATH, {}, 5)
    assert failure.value.outcome == "connect error"
    await server.start()
    assert (await transport.call(RAW, PATH, {}, 5)).decision is Decision.PASS


async def test_a_refused_port_is_a_connect_error_at_once():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        transport = McpFilterTransport(f"http://user:pw@127.0.0.1:{port}/mcp", "guard")
        started = time.monotonic()
        for _ in range(2):
            with pytest.raises(FilterFailure) as failure:
                await transport.call(RAW, PATH, {}, 5)
            assert failure.value.outcome == "connect error"
            assert "pw" not in failure.value.message
        assert time.monotonic() - started < 2
        await transport.close()


async def test_http_500_from_the_server(server, make):
    transport = make("passthrough")
    server.fail_status = 500
    with pytest.raises(FilterFailure) as failure:
        await transport.call(RAW, PATH, {}, 5)  # at initialize
    assert (failure.value.outcome, failure.value.status) == ("HTTP 500", 500)
    server.fail_status = None
    await transport.call(RAW, PATH, {}, 5)
    server.fail_status = 503
    with pytest.raises(FilterFailure) as failure:
        await transport.call(RAW, PATH, {}, 5)  # on the tool call
    assert failure.value.outcome == "HTTP 503"
    server.fail_status = None
    assert (await transport.call(RAW, PATH, {}, 5)).decision is Decision.PASS


async def test_an_unknown_endpoint_is_http_404(server):
    transport = McpFilterTransport(server.url.replace("/mcp", "/nope"), "passthrough")
    with pytest.raises(FilterFailure) as failure:
        await transport.call(RAW, PATH, {}, 5)
    assert failure.value.outcome == "HTTP 404"
    await transport.close()


def _open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts sockets in /proc")
async def test_close_leaves_no_task_and_no_socket(server):
    async def cycle() -> None:
        transport = McpFilterTransport(server.url, "passthrough")
        await asyncio.gather(*[transport.call(RAW, PATH, {}, 5) for _ in range(3)])
        await transport.close()

    await cycle()  # warm: the server's own first-use state
    await asyncio.sleep(0.1)
    tasks, sockets = len(asyncio.all_tasks()), _open_sockets()
    for _ in range(25):
        await cycle()
    await asyncio.sleep(0.2)  # the server side of closed connections
    assert len(asyncio.all_tasks()) <= tasks
    assert _open_sockets() <= sockets
    closed = McpFilterTransport(server.url, "passthrough")
    await closed.close()
    with pytest.raises(FilterFailure):
        await closed.call(RAW, PATH, {}, 5)


async def test_messages_name_the_url_as_redact_url_shows_it():
    """Credentials masked (userinfo, a key in the query), the rest kept: an IPv6 host
    keeps its brackets, so the message names an address that can be used."""
    transport = McpFilterTransport("http://user:pw@[::1]:9/mcp?api_key=sk-abc&region=eu", "g")
    await transport.close()
    with pytest.raises(FilterFailure) as failure:
        await transport.call(RAW, PATH, {}, 5)
    assert failure.value.message == (
        "MCP filter tool 'g' at http://********@[::1]:9/mcp?api_key=********&region=eu: "
        "the filter is closed"
    )
