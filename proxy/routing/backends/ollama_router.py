"""A router LLM served by Ollama (Arch-Router by default), through Ollama's own client."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from proxy.config.redact import redact_url
from proxy.routing.backends.base import RouterAnswer, RouterUnavailable
from proxy.routing.backends.llm_prompting import RouterPrompting
from proxy.routing.conversation import Turn
from proxy.routing.routes import Route

NAME = "ollama"
LOAD_TIMEOUT_S = 300
DEFAULT_MODEL = "hf.co/katanemo/Arch-Router-1.5B.gguf:Q4_K_M"
DEFAULT_HOST = "http://localhost:11434"
INSTALL_HINT = "install Ollama from https://ollama.com/download and start it with `ollama serve`"


@dataclass(frozen=True, slots=True)
class PullProgress:
    status: str
    completed: int | None
    total: int | None
    digest: str | None


ProgressCallback = Callable[[PullProgress], None]


def default_host() -> str:
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return DEFAULT_HOST
    return host if "://" in host else f"http://{host}"


class OllamaBackend:
    name = NAME

    def __init__(
        self,
        model: str | None = None,
        host: str | None = None,
        timeout_s: float = 3.0,
        keep_alive: str | int = -1,
        pull: bool = True,
        prompting: RouterPrompting | None = None,
    ):
        self.model = model or DEFAULT_MODEL
        self.host = (host or default_host()).rstrip("/")
        self.timeout_s = timeout_s
        self.keep_alive = keep_alive
        self.pull = pull
        self.prompting = prompting or RouterPrompting(self.model)
        self._client = None

    def _ollama(self):
        if self._client is None:
            import ollama  # deferred: it brings httpx and pydantic

            # The client's own timeout covers pulls too, which may take minutes: requests
            # that must be quick are bounded by asyncio.wait_for instead.
            self._client = ollama.AsyncClient(host=self.host)
        return self._client

    async def reachable(self, timeout_s: float = 1.0) -> bool:
        try:
            await asyncio.wait_for(self._ollama().ps(), timeout_s)
        except Exception:
            return False
        return True

    async def has_model(self) -> bool:
        import ollama

        try:
            await asyncio.wait_for(self._ollama().show(self.model), 10)
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                return False
            raise RouterUnavailable(f"ollama at {self.host}: {exc.error}") from None
        except Exception as exc:  # timed out or dropped: startup must fall back, not crash
            raise RouterUnavailable(f"ollama at {self.host}: {type(exc).__name__} {exc}") from None
        return True

    async def ensure_model(self, progress: ProgressCallback | None = None) -> bool:
        """Pull the router model when missing; True when a pull happened."""
        if not await self.reachable():
            raise RouterUnavailable(f"Ollama is not running at {self.host}: {INSTALL_HINT}")
        if await self.has_model():
            return False
        if not self.pull:
            raise RouterUnavailable(
                f"the router model {self.model} is not in Ollama at {self.host}; "
                f"run `ollama pull {self.model}` or set routing.router.pull: true"
            )
        import ollama

        try:
            async for update in await self._ollama().pull(self.model, stream=True):
                if progress is not None:
                    progress(
                        PullProgress(
                            update.status or "", update.completed, update.total, update.digest
                        )
                    )
        except ollama.ResponseError as exc:
            raise RouterUnavailable(f"pulling {self.model} failed: {exc.error}") from None
        except Exception as exc:  # connection dropped mid-pull
            raise RouterUnavailable(f"pulling {self.model} failed: {exc}") from None
        return True

    async def start(self) -> None:
        """Load the model into memory and keep it there, so the first request is not slow."""
        import ollama

        try:
            # Loading a gigabyte from disk on a CPU box can take a while, but not forever.
            await asyncio.wait_for(
                self._ollama().generate(self.model, prompt="", keep_alive=self.keep_alive),
                LOAD_TIMEOUT_S,
            )
        except ollama.ResponseError as exc:
            raise RouterUnavailable(f"ollama could not load {self.model}: {exc.error}") from None
        except Exception as exc:
            raise RouterUnavailable(f"Ollama is not reachable at {self.host}: {exc}") from None

    def prepare(self, routes: Sequence[Route]) -> None:
        """Nothing to do ahead of time: the routes go into each prompt."""

    async def decide(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer:
        import ollama

        prompt = self.prompting.prompt(turns, routes)
        try:
            reply = await asyncio.wait_for(
                self._ollama().chat(
                    self.model,
                    messages=[{"role": "user", "content": prompt}],
                    options={"temperature": 0},
                    keep_alive=self.keep_alive,
                ),
                self.timeout_s,
            )
        except TimeoutError:
            raise RouterUnavailable(f"ollama: no answer within {self.timeout_s:g}s") from None
        except ollama.ResponseError as exc:
            raise RouterUnavailable(f"ollama: {exc.error} (HTTP {exc.status_code})") from None
        except Exception as exc:
            raise RouterUnavailable(f"ollama at {self.host}: {exc}") from None
        return self.prompting.answer(reply.message.content or "", routes, NAME)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    def describe(self) -> str:
        host = redact_url(self.host)
        return f"ollama {self.model} at {host} ({self.prompting.style.value} prompt)"
