"""What one MCP filter call costs: one kept session (Plano) vs a new session per call (upstream).

    python bench/mcp_filter.py [--calls 500] [--warmup 50] [--kb 2] [--json-response]

Starts a pass-through MCP filter server (the SDK's MCPServer over streamable HTTP, uvicorn)
in a child process on a loopback port, then times, in this process:
- `McpFilterTransport.call`: the session is initialized once and reused;
- the upstream way: connect, initialize, notifications/initialized, tools/call, DELETE,
  with the SDK's own client, for every call.
Prints p50 and p99 in milliseconds for each. The server's own work is in both numbers.
An SSE reply (the SDK server's default) ends its connection: the client reads the one event
and closes, so each call opens a TCP connection; `--json-response` serves JSON replies,
whose connections are reused.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

import orjson

from proxy.filters.mcp_transport import McpFilterTransport
from proxy.percentiles import percentile

PATH = "/v1/chat/completions"


def serve(port: int, json_response: bool) -> None:
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    mcp = MCPServer("bench-filter", log_level="WARNING")

    @mcp.tool()
    def passthrough(body: dict, path: str) -> dict:
        return body

    app = mcp.streamable_http_app(json_response=json_response)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def body(kb: int) -> bytes:
    text = "Summarise the quarterly report for the board. " * (kb * 1024 // 48)
    return orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})


async def kept_session(url: str, raw: bytes, calls: int, warmup: int) -> list[float]:
    transport = McpFilterTransport(url, "passthrough")
    times = []
    try:
        for i in range(warmup + calls):
            started = time.perf_counter()
            await transport.call(raw, PATH, {"x-request-id": str(i)}, 5)
            if i >= warmup:
                times.append(time.perf_counter() - started)
    finally:
        await transport.close()
    return times


async def fresh_sessions(url: str, raw: bytes, calls: int, warmup: int) -> list[float]:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    arguments = {"body": orjson.loads(raw), "path": PATH}
    times = []
    for i in range(warmup + calls):
        started = time.perf_counter()
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.call_tool("passthrough", arguments)
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return times


def wait_for(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the MCP server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--kb", type=int, default=2, help="size of the request body")
    parser.add_argument(
        "--json-response",
        action="store_true",
        help="the server answers JSON instead of SSE (its connections are then kept alive)",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.json_response)
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(port)]
    child = subprocess.Popen(command + (["--json-response"] if args.json_response else []))
    try:
        wait_for(port)
        url = f"http://127.0.0.1:{port}/mcp"
        raw = body(args.kb)
        for name, run in (("kept session", kept_session), ("session per call", fresh_sessions)):
            times = asyncio.run(run(url, raw, args.calls, args.warmup))
            p50, p99 = (percentile(times, q) * 1000 for q in (50, 99))
            size = f"{args.calls} calls, {args.kb} KB body"
            print(f"{name:>17}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({size})")
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    main()
