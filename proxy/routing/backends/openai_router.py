"""A router LLM behind any OpenAI-compatible endpoint: vLLM, a hosted Plano-Orchestrator."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import orjson

from proxy.config.redact import redact_url
from proxy.routing.backends.base import CALL_HEADERS, RouterAnswer, RouterUnavailable
from proxy.routing.backends.llm_prompting import RouterPrompting
from proxy.routing.conversation import Turn
from proxy.routing.routes import Route

NAME = "openai-compatible"


class OpenAICompatibleBackend:
    name = NAME

    def __init__(
        self,
        model: str,
        url: str,
        headers: dict[str, str] | None = None,
        timeout_s: float = 3.0,
        session: aiohttp.ClientSession | None = None,
        prompting: RouterPrompting | None = None,
    ):
        """`url` is the full chat completions URL; `headers` carry auth, if any."""
        self.model = model
        self.url = url
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.timeout_s = timeout_s
        self.prompting = prompting or RouterPrompting(model)
        self._session = session
        self._owns_session = session is None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def reachable(self, timeout_s: float = 1.0) -> bool:
        """Whether anything answers HTTP at the endpoint's /models: any status will do, an
        auth error included; only a refused connection or silence counts as unreachable."""
        await self.start()
        base = self.url.removesuffix("/chat/completions")
        try:
            async with self._session.get(
                f"{base}/models",
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ):
                return True
        except (aiohttp.ClientError, TimeoutError):
            return False

    def prepare(self, routes: Sequence[Route]) -> None:
        """Nothing to do ahead of time: the routes go into each prompt."""

    async def decide(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer:
        await self.start()
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompting.prompt(turns, routes)}],
            "temperature": 0.01,
        }
        try:
            extra = CALL_HEADERS.get()
            headers = {**self.headers, **extra} if extra else self.headers
            async with self._session.post(
                self.url, data=orjson.dumps(body), headers=headers, timeout=self.timeout
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise RouterUnavailable(
                        f"{NAME}: HTTP {response.status} from the router endpoint"
                    )
        except TimeoutError:
            raise RouterUnavailable(f"{NAME}: no answer within {self.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise RouterUnavailable(f"{NAME}: {type(exc).__name__}: {exc}") from None
        try:
            content = orjson.loads(raw)["choices"][0]["message"]["content"] or ""
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
            raise RouterUnavailable(f"{NAME}: the router endpoint sent a malformed reply") from None
        return self.prompting.answer(content, routes, NAME)

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    def describe(self) -> str:
        return f"{self.model} at {redact_url(self.url)} ({self.prompting.style.value} prompt)"
