"""The `local` provider: a GGUF model served by llama.cpp's OpenAI-compatible server.

llama.cpp comes prebuilt in the xllamacpp wheel (`pip install 'plano[local]'`); the model
files are found or fetched by gguf_files.py.

`plano up` starts one child process per local model, on a free loopback port, and then
treats it as an ordinary OpenAI-wire provider: the proxy's request path has no special
case for it. A child process, rather than llama.cpp in-process, keeps model inference
(CPU-bound, holding its own lock) off the proxy's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from proxy.embedded.gguf_files import (
    INSTALL_HINT,
    KNOWN_MODELS,
    LocalModelError,
    known_model_file,
)

LOCAL_PROVIDER = "local"


def model_file(model_id: str) -> Path:
    """The GGUF file of a local model id: a known model (fetched on first use), or a path."""
    known = KNOWN_MODELS.get(model_id)
    if known is not None:
        return known_model_file(known)
    path = Path(model_id).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise LocalModelError(
        f"unknown local model '{model_id}': use {', '.join(KNOWN_MODELS)}, "
        "or the path of a .gguf file"
    )


def check_server_installed() -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        raise LocalModelError(f"the local provider needs llama.cpp's server: {INSTALL_HINT}")


class LocalModelServer:
    """One llama.cpp server child process for one model."""

    def __init__(self, model_id: str, *, context: int = 2048, threads: int | None = None):
        self.model_id = model_id
        self.context = context
        # Leave a core to the proxy itself on small machines.
        self.threads = threads or max(1, min(4, (os.cpu_count() or 2) - 1))
        self.base_url: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        # Kept open for the child's lifetime, to quote it when the child fails.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115

    async def start(self, timeout_s: float = 120.0) -> str:
        check_server_installed()
        # A known model's weights may have to be fetched first (once, ~100 MB): off the loop.
        model = await asyncio.to_thread(model_file, self.model_id)
        port = _free_port()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            # llama.cpp's C++ server, from the xllamacpp wheel (see llama_server.py)
            "proxy.embedded.llama_server",
            "--model",
            str(model),
            "--alias",
            self.model_id,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ctx",
            str(self.context),
            "--threads",
            str(self.threads),
            *_template_args(self.model_id),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        base_url = f"http://127.0.0.1:{port}/v1"
        await self._wait_ready(base_url, timeout_s)
        self.base_url = base_url
        return base_url

    async def _wait_ready(self, base_url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.returncode is not None:
                    raise LocalModelError(
                        f"the llama.cpp server for local/{self.model_id} exited "
                        f"({self._process.returncode}): {self._log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        f"{base_url}/models", timeout=aiohttp.ClientTimeout(total=2)
                    ) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.2)
        await self.stop()
        raise LocalModelError(
            f"the llama.cpp server for local/{self.model_id} did not start "
            f"within {timeout_s:.0f}s: {self._log_tail()}"
        )

    async def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, and SIGKILL if it has not exited within `timeout_s`."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            self._log.close()
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
        self._log.close()

    def _log_tail(self, limit: int = 800) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", errors="replace").strip()
        return text[-limit:] or "(no output)"


def _template_args(model_id: str) -> list[str]:
    known = KNOWN_MODELS.get(model_id)
    if known is None or known.chat_template is None:
        return []  # a GGUF file of the user's: its own template
    return ["--chat-template", known.chat_template]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
