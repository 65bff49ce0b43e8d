"""A real MCP filter server for the tests: the `mcp` SDK's MCPServer over streamable HTTP,
served by uvicorn in the test's own event loop on a loopback port.

Its tools take upstream's arguments ({"body", "path"}) and pass, rewrite, block, answer
structuredContent, answer garbage, sleep, or answer a huge result. `stop()` and `start()`
again on the same port stand for a server restart: the new server knows no old session.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, TextContent


class McpFilterServer:
    def __init__(self) -> None:
        self.port = 0
        self.calls: list[dict[str, Any]] = []  # the arguments each tool got
        self.posts: list[dict[str, str]] = []  # the headers of each POST to /mcp
        self.sessions_started = 0
        self.fail_status: int | None = None  # answer every POST with this status
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _app(self) -> Any:
        mcp = MCPServer("plano-test-filter", log_level="WARNING")
        calls = self.calls

        @mcp.tool()
        def passthrough(body: Any, path: str) -> Any:
            calls.append({"tool": "passthrough", "body": body, "path": path})
            return body

        @mcp.tool()
        def rewrite(body: Any, path: str) -> Any:
            calls.append({"tool": "rewrite", "body": body, "path": path})
            for message in body.get("messages", []):
                message["content"] = message["content"].replace("secret", "[redacted]")
            return body

        @mcp.tool()
        def block(body: Any, path: str) -> CallToolResult:
            calls.append({"tool": "block", "body": body, "path": path})
            return CallToolResult(
                content=[TextContent(text="blocked by policy: no secrets")], is_error=True
            )

        @mcp.tool()
        def structured(body: Any, path: str) -> CallToolResult:
            new = dict(body, model="rewritten-by-structured")
            return CallToolResult(
                content=[TextContent(text="not the body")], structured_content={"result": new}
            )

        @mcp.tool()
        def garbage(body: Any, path: str) -> str:
            return "this is {not json"

        @mcp.tool()
        def garbage_text(body: Any, path: str) -> CallToolResult:
            return CallToolResult(content=[TextContent(text="<html>oops</html>")])

        @mcp.tool()
        def wrong_type(body: Any, path: str) -> list:
            return [1, 2, 3]

        @mcp.tool()
        def rewrite_text(body: Any, path: str) -> str:
            return body.replace("secret", "[redacted]")

        @mcp.tool()
        def empty(body: Any, path: str) -> CallToolResult:
            return CallToolResult(content=[])

        @mcp.tool()
        async def slow(body: Any, path: str) -> Any:
            await asyncio.sleep(30)
            return body

        @mcp.tool()
        def huge(body: Any, path: str) -> str:
            return "x" * (4 * 1024 * 1024)

        app = mcp.streamable_http_app()
        return self._recorder(app)

    def _recorder(self, app: Any) -> Any:
        async def wrapped(scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["method"] == "POST":
                headers = {k.decode(): v.decode() for k, v in scope["headers"]}
                self.posts.append(headers)
                if "mcp-session-id" not in headers:
                    self.sessions_started += 1
                if self.fail_status is not None:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": self.fail_status,
                            "headers": [(b"content-type", b"text/plain")],
                        }
                    )
                    await send({"type": "http.response.body", "body": b"broken"})
                    return
            await app(scope, receive, send)

        return wrapped

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def __aenter__(self) -> McpFilterServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
