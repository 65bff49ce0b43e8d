"""MCP filters through the chain: the official SDK client -> the real proxy -> a real MCP
filter server (the `mcp` SDK's, streamable HTTP) on loopback."""

from __future__ import annotations

import asyncio
import threading

import anthropic
import pytest
from filters_harness import ANTHROPIC_KEY, OPENAI_KEY, Gateway, filters_config
from proxy_harness import openai_and_anthropic_upstreams
from test_filters_http import ask

from proxy.filters.verdict import ATTR_DECISION, ATTR_KIND
from tests.fakes.mcp_filter_server import McpFilterServer


@pytest.fixture(scope="module")
def mcp_server():
    """The MCP server in a thread of its own, with its own event loop."""
    loop = asyncio.new_event_loop()
    server = McpFilterServer()
    stop = asyncio.Event()
    ready = threading.Event()

    async def run() -> None:
        async with server:
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield server
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


@pytest.fixture(scope="module")
def gateway(mcp_server):
    filters = (
        f"- {{id: rewrite, url: '{mcp_server.url}'}}\n"
        f"- {{id: guard, url: '{mcp_server.url}', tool: block}}\n"
    )
    with openai_and_anthropic_upstreams(OPENAI_KEY, ANTHROPIC_KEY) as upstreams:
        configs = {
            "rewrite": filters_config(upstreams, filters, "input_filters: [rewrite]"),
            "block": filters_config(upstreams, filters, "input_filters: [guard]"),
        }
        with Gateway(configs["rewrite"]) as rewriting, Gateway(configs["block"]) as blocking:
            yield {"rewrite": rewriting, "block": blocking, "upstreams": upstreams}


@pytest.mark.parametrize("stream", [False, True])
def test_an_mcp_filter_rewrites_the_request(gateway, mcp_server, stream):
    text = ask(gateway["rewrite"], "openai_chat", stream, "my secret plan")
    assert text == "echo: my [redacted] plan"
    assert mcp_server.calls[-1]["path"] == "/v1/chat/completions"
    (step,) = gateway["rewrite"].filter_steps()
    assert step.attributes[ATTR_KIND] == "mcp"
    assert step.attributes[ATTR_DECISION] == "modify"


def test_an_mcp_filter_blocks_in_the_clients_shape(gateway):
    with pytest.raises(anthropic.BadRequestError) as raised:
        ask(gateway["block"], "anthropic_messages", False, "anything")
    assert raised.value.body["type"] == "error"
    assert "filter 'guard' blocked the request: blocked by policy: no secrets" in str(raised.value)
