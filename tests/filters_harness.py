"""The proxy with filters in front of stand-in upstreams and stand-in filter servers."""

from __future__ import annotations

import contextlib
import textwrap
import time
from collections.abc import Iterator

import anthropic
import openai
from fakes.filter_server import FilterServer
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml

from proxy.config.model import Config
from proxy.gateway.exchange import Exchange, Step, StepKind

OPENAI_KEY = "sk-openai-filters-test-000000000000"
ANTHROPIC_KEY = "sk-ant-filters-test-00000000000000"
FILTER_NAMES = ("guard", "second", "third")


@contextlib.contextmanager
def filter_servers(names: tuple[str, ...] = FILTER_NAMES) -> Iterator[dict[str, FilterServer]]:
    """One stand-in http filter per name, sharing one call log (the order of calls)."""
    log: list[str] = []
    servers = {name: FilterServer(name, log=log) for name in names}
    with contextlib.ExitStack() as stack:
        for server in servers.values():
            thread = stack.enter_context(ServerThread(server.app()))
            server.url = thread.base_url  # type: ignore[attr-defined]
        yield servers


def filters_config(
    upstreams: dict, filters: str, listener: str = "", retries: int = 0, extra: str = ""
) -> Config:
    """A model listener over the stand-in providers; `filters` is the filters list's YAML,
    `listener` more keys of the listener (input_filters: [...])."""
    text = f"""\
version: v0.4.0
listeners:
  - name: llm
    type: model
    port: 12000
    max_retries: {retries}
{textwrap.indent(textwrap.dedent(listener), "    ")}
model_providers:
  - {{model: openai/gpt-4o, base_url: "{upstreams["openai"][1]}/v1", access_key: $OA,
      default: true}}
  - {{model: anthropic/claude-sonnet-4-6, base_url: "{upstreams["anthropic"][1]}",
      access_key: $AN}}
filters:
{textwrap.indent(textwrap.dedent(filters), "  ")}
{textwrap.dedent(extra)}
"""
    return config_from_yaml(text, env={"OA": OPENAI_KEY, "AN": ANTHROPIC_KEY})


class Gateway:
    """A proxy over a config, recording each request's Exchange."""

    def __init__(self, config: Config):
        self.exchanges: list[Exchange] = []
        self.proxy = ProxyThread(config, observers=[self.exchanges.append])

    def __enter__(self) -> Gateway:
        self.proxy.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.proxy.__exit__(*exc)

    @property
    def url(self) -> str:
        return self.proxy.url

    def openai(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="client-key", max_retries=0, **kw)

    def anthropic(self, **kw) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key="client-key", max_retries=0, **kw)

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        """Until `count` requests are recorded: a stream's client may finish before the
        proxy's handler does."""
        deadline = time.monotonic() + timeout
        while len(self.exchanges) < count and time.monotonic() < deadline:
            time.sleep(0.005)

    @property
    def last(self) -> Exchange:
        assert self.exchanges, "no request was recorded"
        return self.exchanges[-1]

    def filter_steps(self, exchange: Exchange | None = None) -> list[Step]:
        exchange = exchange or self.last
        return [s for s in exchange.steps if s.kind is StepKind.FILTER]
