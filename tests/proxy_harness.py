"""Run the real proxy on an ephemeral loopback port, in a thread with its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import textwrap
import threading

from proxy.config import Mode, check_text
from proxy.config.model import Config
from proxy.server.runner import ProxyServer
from proxy.telemetry.settings import WorkerSettings
from proxy.upstream.retry import Backoff


def config_from_yaml(text: str, env: dict | None = None) -> Config:
    result = check_text(textwrap.dedent(text), env=env or {}, mode=Mode.SERVE)
    assert result.ok, [p.message for p in result.errors]
    listeners = tuple(
        dataclasses.replace(lst, port=0, address="127.0.0.1") for lst in result.config.listeners
    )
    return dataclasses.replace(result.config, listeners=listeners)


class ProxyThread:
    def __init__(
        self,
        config: Config,
        shutdown_timeout: float = 5.0,
        observers=None,
        backoff: Backoff | None = None,
        telemetry: WorkerSettings | None = None,
    ):
        # Fast backoff keeps retry tests quick; a Retry-After header is still honoured.
        self.server = ProxyServer(
            config,
            shutdown_timeout=shutdown_timeout,
            observers=observers,
            backoff=backoff or Backoff(base_s=0.01, cap_s=0.05),
            telemetry=telemetry,
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ProxyThread:
        self._thread.start()
        # The telemetry worker is a spawned process: it takes a few seconds on a busy machine.
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(60)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.server.bound[0].url

    def stop(self, timeout: float = 30) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@contextlib.contextmanager
def openai_and_anthropic_upstreams(openai_key: str, anthropic_key: str):
    """One stand-in OpenAI and one Anthropic provider: {name: (state, base_url)}."""
    from fakes.providers import FakeProvider, anthropic_app, openai_app
    from fakes.server_thread import ServerThread

    oa, an = FakeProvider(expected_key=openai_key), FakeProvider(expected_key=anthropic_key)
    with ServerThread(openai_app(oa)) as oa_server, ServerThread(anthropic_app(an)) as an_server:
        yield {"openai": (oa, oa_server.base_url), "anthropic": (an, an_server.base_url)}


def openai_and_anthropic_config(
    upstreams: dict, openai_key: str, anthropic_key: str, retries: int = 2, extra: str = ""
) -> Config:
    """A listener over the two stand-ins of `openai_and_anthropic_upstreams`: openai/gpt-4o
    (the default) and anthropic/claude-sonnet-4-6; `extra` is more top-level YAML."""
    head = textwrap.dedent(
        f"""\
        version: v0.4.0
        listeners: [{{type: model, max_retries: {retries}}}]
        model_providers:
          - {{model: openai/gpt-4o, base_url: "{upstreams["openai"][1]}/v1",
              access_key: $OA, default: true}}
          - {{model: anthropic/claude-sonnet-4-6, base_url: "{upstreams["anthropic"][1]}",
              access_key: $AN}}
        """
    )
    env = {"OA": openai_key, "AN": anthropic_key}
    return config_from_yaml(head + textwrap.dedent(extra), env=env)
