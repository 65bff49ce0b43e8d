"""The OpenAI-compatible router backend, the hybrid backend, and the routing service."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator, Sequence

import pytest
from conftest import check
from fakes.ollama_server import FakeOllama, closed_port_url, ollama_app
from fakes.providers import FakeProvider, malformed_json, openai_app, slow, status, text_reply
from fakes.server_thread import ServerThread

from proxy.config import Mode
from proxy.routing.backends.base import RouterAnswer, RouterUnavailable
from proxy.routing.backends.hybrid import HybridBackend
from proxy.routing.backends.ollama_router import DEFAULT_MODEL, OllamaBackend
from proxy.routing.backends.openai_router import OpenAICompatibleBackend
from proxy.routing.conversation import Turn
from proxy.routing.pins import MemoryPins
from proxy.routing.prompts import PromptStyle, build_prompt
from proxy.routing.routes import Route
from proxy.routing.service import RoutingService
from proxy.routing.setup import RouterSetupError, build_routing

ROUTES = (
    Route("code_generation", "writing new code, functions and programs", ("openai/gpt-4o",)),
    Route(
        "bug_fixing",
        "debugging and fixing errors in existing code",
        ("anthropic/claude-sonnet-4", "openai/gpt-4o-mini", "openai/gpt-4o"),
        "cheapest",
    ),
)
TURNS: list[Turn] = [("user", "please help me with debugging, fixing errors in my code")]


# --------------------------------------------------------------------------- OpenAI-compatible


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(expected_key="sk-router")


@pytest.fixture
def upstream(provider: FakeProvider) -> Iterator[ServerThread]:
    with ServerThread(openai_app(provider)) as running:
        yield running


@pytest.fixture
async def openai_backend(upstream: ServerThread):
    made = OpenAICompatibleBackend(
        "katanemo/Arch-Router-1.5B",
        upstream.base_url + "/v1/chat/completions",
        {"Authorization": "Bearer sk-router"},
        timeout_s=5,
    )
    yield made
    await made.close()


async def test_openai_compatible_decides(openai_backend, provider: FakeProvider):
    provider.push(text_reply('{"route": "bug_fixing"}'))
    answer = await openai_backend.decide(TURNS, ROUTES)
    assert answer.route == "bug_fixing"
    assert answer.backend == "openai-compatible"
    sent = provider.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-router"
    assert sent.body["model"] == "katanemo/Arch-Router-1.5B"
    assert sent.body["messages"] == [
        {"role": "user", "content": build_prompt(PromptStyle.ARCH_ROUTER, ROUTES, TURNS)}
    ]
    assert sent.body["temperature"] < 0.05
    assert "stream" not in sent.body or sent.body["stream"] is False


async def test_openai_compatible_orchestrator_answers_a_list(upstream, provider: FakeProvider):
    backend = OpenAICompatibleBackend(
        "katanemo/Plano-Orchestrator-4B",
        upstream.base_url + "/v1/chat/completions",
        {"Authorization": "Bearer sk-router"},
    )
    provider.push(text_reply('{"route": ["code_generation", "bug_fixing"]}'))
    try:
        answer = await backend.decide(TURNS, ROUTES)
    finally:
        await backend.close()
    assert answer.route == "code_generation"
    assert answer.named == ("code_generation", "bug_fixing")
    assert "## Response Format" in provider.last.body["messages"][0]["content"]


@pytest.mark.parametrize("code", [401, 429, 500, 503])
async def test_openai_compatible_http_error_is_unavailable(openai_backend, provider, code):
    provider.push(status(code))
    with pytest.raises(RouterUnavailable, match=f"HTTP {code} from the router endpoint"):
        await openai_backend.decide(TURNS, ROUTES)


async def test_openai_compatible_wrong_key_is_unavailable(upstream, provider: FakeProvider):
    backend = OpenAICompatibleBackend("m", upstream.base_url + "/v1/chat/completions")
    try:
        with pytest.raises(RouterUnavailable, match="HTTP 401"):
            await backend.decide(TURNS, ROUTES)
    finally:
        await backend.close()


@pytest.mark.parametrize(
    "behaviour",
    [
        malformed_json(),
        status(200, body={"id": "x", "choices": []}),
        status(200, body={"error": "nope"}),
        status(200, body=["not", "an", "object"]),
        status(200, body="plain text"),
    ],
)
async def test_openai_compatible_malformed_reply_is_unavailable(
    openai_backend, provider, behaviour
):
    provider.push(behaviour)
    with pytest.raises(RouterUnavailable, match="malformed reply"):
        await openai_backend.decide(TURNS, ROUTES)


async def test_openai_compatible_unreadable_answer_is_unavailable(openai_backend, provider):
    provider.push(text_reply("bug_fixing, I think"))
    with pytest.raises(RouterUnavailable, match="openai-compatible: no JSON object"):
        await openai_backend.decide(TURNS, ROUTES)


async def test_openai_compatible_timeout_is_unavailable(upstream, provider: FakeProvider):
    provider.push(slow(30))
    backend = OpenAICompatibleBackend(
        "m",
        upstream.base_url + "/v1/chat/completions",
        {"Authorization": "Bearer sk-router"},
        timeout_s=0.3,
    )
    try:
        with pytest.raises(RouterUnavailable, match=r"no answer within 0\.3s"):
            await backend.decide(TURNS, ROUTES)
    finally:
        await backend.close()


async def test_openai_compatible_endpoint_down_is_unavailable():
    backend = OpenAICompatibleBackend("m", closed_port_url() + "/v1/chat/completions")
    try:
        with pytest.raises(RouterUnavailable, match="openai-compatible: Client"):
            await backend.decide(TURNS, ROUTES)
    finally:
        await backend.close()


_HEAD = """\
    version: v0.4.0
    listeners: [{name: m, type: model}]
    model_providers:
      - {model: openai/gpt-4o, access_key: $K, default: true}
    routing_preferences:
      - {name: code_generation, description: writing new code, models: [openai/gpt-4o]}
    """


def _config(routing_yaml: str, env: dict[str, str], extra_provider: str = ""):
    head = textwrap.dedent(_HEAD).replace(
        "routing_preferences:", extra_provider + "routing_preferences:"
    )
    text = head + textwrap.dedent(routing_yaml)
    result = check(text, env=env, mode=Mode.SERVE)
    assert result.ok, result.problems
    return result.config


async def test_build_routing_openai_compatible_from_base_url(upstream, provider):
    config = _config(
        f"""\
    routing:
      router:
        backend: openai-compatible
        model: katanemo/Arch-Router-1.5B
        base_url: {upstream.base_url}/v1
        access_key: $ROUTER_KEY
        timeout: 2s
    """,
        {"K": "sk-x", "ROUTER_KEY": "sk-router"},
    )
    provider.push(text_reply('{"route": "code_generation"}'))
    service = await build_routing(config)
    try:
        assert isinstance(service.backend, OpenAICompatibleBackend)
        assert service.backend.url == upstream.base_url + "/v1/chat/completions"
        assert service.backend.timeout_s == 2
        decision = await service.decide([("user", "write new code for a parser")])
    finally:
        await service.close()
    assert decision.route == "code_generation"
    assert decision.models == ("openai/gpt-4o",)
    assert provider.last.headers["authorization"] == "Bearer sk-router"
    assert provider.last.body["model"] == "katanemo/Arch-Router-1.5B"


async def test_build_routing_openai_compatible_without_an_endpoint_is_a_setup_error():
    config = _config(
        """\
    routing:
      router: {backend: openai-compatible}
    """,
        {"K": "sk-x"},
    )
    with pytest.raises(RouterSetupError, match="no endpoint is known"):
        await build_routing(config)


# --------------------------------------------------------------------------- hybrid


class FakeEmbedded:
    """Stands in for the embedded router: a fixed answer with a chosen margin."""

    name = "embedded"

    def __init__(self, route: str | None, margin: float):
        self.route, self.margin = route, margin
        self.started = self.closed = False
        self.calls = 0
        self.prepared: tuple[Route, ...] = ()

    async def start(self) -> None:
        self.started = True

    def prepare(self, routes: Sequence[Route]) -> None:
        self.prepared = tuple(routes)

    async def decide(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer:
        self.calls += 1
        scores = {r.name: 0.5 for r in routes}
        if self.route is not None:
            scores[self.route] = 0.5 + self.margin
        return RouterAnswer(
            self.route, "embedded", scores, margin=self.margin, detail=f"margin {self.margin:.3f}"
        )

    async def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return "fake embedded router"


@pytest.fixture
def ollama_state() -> FakeOllama:
    return FakeOllama(installed=[DEFAULT_MODEL])


@pytest.fixture
def ollama_server(ollama_state: FakeOllama) -> Iterator[ServerThread]:
    with ServerThread(ollama_app(ollama_state)) as running:
        yield running


async def test_hybrid_confident_embedded_never_asks_the_llm(ollama_server, ollama_state):
    embedded = FakeEmbedded("code_generation", margin=0.2)
    hybrid = HybridBackend(embedded, OllamaBackend(host=ollama_server.base_url), 0.08)  # type: ignore[arg-type]
    try:
        answer = await hybrid.decide(TURNS, ROUTES)
    finally:
        await hybrid.close()
    assert answer.route == "code_generation"
    assert answer.backend == "embedded"
    assert answer.escalated is False
    assert ollama_state.to("/api/chat") == []
    assert embedded.closed


async def test_hybrid_margin_at_the_threshold_is_confident(ollama_server, ollama_state):
    hybrid = HybridBackend(
        FakeEmbedded("code_generation", margin=0.08),  # type: ignore[arg-type]
        OllamaBackend(host=ollama_server.base_url),
        0.08,
    )
    try:
        assert (await hybrid.decide(TURNS, ROUTES)).escalated is False
    finally:
        await hybrid.close()
    assert ollama_state.to("/api/chat") == []


async def test_hybrid_unsure_embedded_escalates_to_the_llm(ollama_server, ollama_state):
    embedded = FakeEmbedded("code_generation", margin=0.01)
    hybrid = HybridBackend(embedded, OllamaBackend(host=ollama_server.base_url), 0.08)  # type: ignore[arg-type]
    try:
        await hybrid.start()
        answer = await hybrid.decide(TURNS, ROUTES)
    finally:
        await hybrid.close()
    assert embedded.started
    assert answer.route == "bug_fixing"  # the LLM's choice, not the embedded one
    assert answer.backend == "ollama"
    assert answer.escalated is True
    assert answer.margin == 0.01
    assert answer.scores["code_generation"] == pytest.approx(0.51)  # embedded scores kept
    assert "embedded margin 0.010 < 0.08" in answer.detail
    assert len(ollama_state.to("/api/chat")) == 1


async def test_hybrid_keeps_the_embedded_answer_when_the_llm_is_down():
    embedded = FakeEmbedded("code_generation", margin=0.01)
    hybrid = HybridBackend(embedded, OllamaBackend(host=closed_port_url()), 0.08)  # type: ignore[arg-type]
    try:
        await hybrid.start()  # the LLM cannot load: the embedded router decides alone
        answer = await hybrid.decide(TURNS, ROUTES)
    finally:
        await hybrid.close()
    assert answer.route == "code_generation"
    assert answer.backend == "embedded"
    assert answer.escalated is False
    assert "LLM router failed" in answer.detail
    assert "kept embedded answer" in answer.detail
    assert "ollama at http://127.0.0.1" in answer.detail


async def test_hybrid_keeps_the_embedded_answer_when_the_llm_times_out(ollama_server, ollama_state):
    ollama_state.delay_s = 30
    llm = OllamaBackend(host=ollama_server.base_url, timeout_s=0.3)
    hybrid = HybridBackend(FakeEmbedded("code_generation", margin=0.0), llm, 0.08)  # type: ignore[arg-type]
    try:
        answer = await hybrid.decide(TURNS, ROUTES)
    finally:
        await hybrid.close()
    assert answer.route == "code_generation"
    assert "no answer within 0.3s" in answer.detail


async def test_hybrid_keeps_the_embedded_answer_when_the_llm_raises_a_bug():
    class Broken:
        name = "broken"

        async def start(self) -> None: ...

        async def decide(self, turns, routes) -> RouterAnswer:
            raise KeyError("choices")

        async def close(self) -> None: ...

        def describe(self) -> str:
            return "broken"

    hybrid = HybridBackend(FakeEmbedded("bug_fixing", margin=0.0), Broken(), 0.08)  # type: ignore[arg-type]
    answer = await hybrid.decide(TURNS, ROUTES)
    assert answer.route == "bug_fixing"
    assert "LLM router failed" in answer.detail


def test_hybrid_describes_both_routers():
    hybrid = HybridBackend(
        FakeEmbedded(None, 0.0),  # type: ignore[arg-type]
        OllamaBackend(host="http://127.0.0.1:1"),
        0.05,
    )
    text = hybrid.describe()
    assert "fake embedded router" in text
    assert "escalating below margin 0.05" in text
    assert DEFAULT_MODEL in text


# --------------------------------------------------------------------------- service


class ScriptedBackend:
    """A backend whose answers (or failures) the test decides, counting its calls."""

    name = "scripted"

    def __init__(self, decide: Callable[[Sequence[Turn], Sequence[Route]], RouterAnswer]):
        self._decide = decide
        self.calls = 0
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    def prepare(self, routes: Sequence[Route]) -> None:
        pass

    async def decide(self, turns: Sequence[Turn], routes: Sequence[Route]) -> RouterAnswer:
        self.calls += 1
        return self._decide(turns, routes)

    async def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return "scripted"


def _answering(route: str | None) -> ScriptedBackend:
    return ScriptedBackend(lambda turns, routes: RouterAnswer(route, "scripted", detail="picked"))


def _raising(exc: Exception) -> ScriptedBackend:
    def decide(turns, routes):
        raise exc

    return ScriptedBackend(decide)


async def test_service_decides_and_ranks_the_route_models():
    service = RoutingService(_answering("bug_fixing"), ROUTES)  # type: ignore[arg-type]
    decision = await service.decide(TURNS)
    assert decision.route == "bug_fixing"
    assert decision.models == ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4")
    assert decision.fallback is None
    assert decision.cached is False
    assert service.stats.decisions[("bug_fixing", "scripted")] == 1
    assert decision.as_json()["route"] == "bug_fixing"


async def test_service_falls_back_when_the_backend_is_unavailable():
    backend = _raising(RouterUnavailable("ollama: no answer within 3s"))
    service = RoutingService(backend, ROUTES)  # type: ignore[arg-type]
    first = await service.decide(TURNS, session="s1")
    assert first.route is None
    assert first.models == ()
    assert first.fallback == "ollama: no answer within 3s"
    assert first.backend == "scripted"
    assert service.stats.fallbacks["scripted"] == 1
    # A fallback is neither cached nor pinned: the next request asks again.
    second = await service.decide(TURNS, session="s1")
    assert second.fallback is not None
    assert second.pinned is False
    assert backend.calls == 2
    assert service.stats.fallbacks["scripted"] == 2
    assert service.stats.cache_hits == 0


async def test_service_falls_back_when_the_backend_raises_a_plain_exception():
    service = RoutingService(_raising(ValueError("boom")), ROUTES)  # type: ignore[arg-type]
    decision = await service.decide(TURNS)
    assert decision.route is None
    assert decision.fallback == "ValueError: boom"
    assert service.stats.fallbacks["scripted"] == 1
    assert not service.stats.decisions


async def test_service_caches_decisions_on_the_conversation_tail():
    backend = _answering("code_generation")
    service = RoutingService(backend, ROUTES)  # type: ignore[arg-type]
    first = await service.decide([("user", "Write a parser")])
    again = await service.decide([("user", "write  a PARSER ")])
    assert backend.calls == 1
    assert first.cached is False
    assert again.cached is True
    assert again.route == "code_generation"
    assert service.stats.cache_hits == 1
    # Another route set is another question.
    other_routes = (*ROUTES, Route("small_talk", "greetings", ("openai/gpt-4o-mini",)))
    await service.decide([("user", "write a parser")], other_routes)
    assert backend.calls == 2


async def test_service_cache_of_size_zero_asks_every_time():
    backend = _answering("code_generation")
    service = RoutingService(backend, ROUTES, cache_size=0)  # type: ignore[arg-type]
    await service.decide(TURNS)
    await service.decide(TURNS)
    assert backend.calls == 2


async def test_service_pins_a_session_to_its_first_route():
    answers = iter(["code_generation", "bug_fixing", "bug_fixing"])
    backend = ScriptedBackend(lambda turns, routes: RouterAnswer(next(answers), "scripted"))
    service = RoutingService(backend, ROUTES)  # type: ignore[arg-type]
    first = await service.decide([("user", "write a parser")], session="s1")
    later = await service.decide([("user", "now fix the bug")], session="s1")
    other = await service.decide([("user", "now fix the bug")], session="s2")
    assert first.route == "code_generation"
    assert later.route == "code_generation"
    assert later.pinned is True
    assert other.route == "bug_fixing"
    assert other.pinned is False
    assert backend.calls == 2
    assert service.stats.pinned == 1


async def test_service_pin_expires_after_the_session_ttl():
    now = [0.0]
    answers = iter(["code_generation", "bug_fixing"])
    backend = ScriptedBackend(lambda turns, routes: RouterAnswer(next(answers), "scripted"))
    service = RoutingService(backend, ROUTES, session_ttl_s=60)  # type: ignore[arg-type]
    service.pins = MemoryPins(60, 100, clock=lambda: now[0])
    await service.decide([("user", "write a parser")], session="s1")
    now[0] = 61
    decision = await service.decide([("user", "now fix the bug")], session="s1")
    assert decision.route == "bug_fixing"
    assert decision.pinned is False


async def test_service_does_not_pin_no_route():
    answers = iter([None, "bug_fixing"])
    backend = ScriptedBackend(lambda turns, routes: RouterAnswer(next(answers), "scripted"))
    service = RoutingService(backend, ROUTES)  # type: ignore[arg-type]
    assert (await service.decide([("user", "hello")], session="s1")).route is None
    assert (await service.decide([("user", "fix the bug")], session="s1")).route == "bug_fixing"


async def test_service_with_nothing_to_route_does_not_ask():
    backend = _answering("code_generation")
    service = RoutingService(backend, ())  # type: ignore[arg-type]
    assert (await service.decide(TURNS)).route is None
    assert (await service.decide([], ROUTES)).detail == "nothing to route"
    assert backend.calls == 0


async def test_service_answer_outside_the_route_set_gets_no_models():
    service = RoutingService(_answering("unknown_route"), ROUTES)  # type: ignore[arg-type]
    decision = await service.decide(TURNS)
    assert decision.models == ()


async def test_service_start_prepares_the_embedded_router_behind_a_hybrid():
    embedded = FakeEmbedded("code_generation", margin=0.5)
    hybrid = HybridBackend(embedded, OllamaBackend(host=closed_port_url()), 0.08)  # type: ignore[arg-type]
    service = RoutingService(hybrid, ROUTES)
    await service.start()
    await service.close()
    assert embedded.prepared == ROUTES
    assert embedded.closed


async def test_service_start_prepares_a_backend_that_can():
    embedded = FakeEmbedded("code_generation", margin=0.5)
    service = RoutingService(embedded, ROUTES)  # type: ignore[arg-type]
    await service.start()
    assert embedded.started
    assert embedded.prepared == ROUTES


async def test_build_routing_openai_compatible_from_a_configured_provider(upstream, provider):
    config = _config(
        """\
    routing:
      router: {backend: openai-compatible, model: arch-router}
    """,
        {"K": "sk-x", "R": "sk-router"},
        extra_provider=(
            f"  - {{model: openai/Arch-Router-1.5B, name: arch-router, "
            f"base_url: {upstream.base_url}/v1, access_key: $R}}\n"
        ),
    )
    provider.push(text_reply('{"route": "code_generation"}'))
    service = await build_routing(config)
    try:
        decision = await service.decide([("user", "write new code")])
    finally:
        await service.close()
    assert decision.route == "code_generation"
    assert provider.last.path == "/v1/chat/completions"
    assert provider.last.body["model"] == "Arch-Router-1.5B"
    assert provider.last.headers["authorization"] == "Bearer sk-router"


async def test_build_routing_refuses_a_router_model_on_another_wire():
    config = _config(
        """\
    routing:
      router: {backend: openai-compatible, model: anthropic/claude-3-5-haiku-latest}
    """,
        {"K": "sk-x"},
        extra_provider="  - {model: anthropic/claude-3-5-haiku-latest, access_key: $K}\n",
    )
    with pytest.raises(RouterSetupError, match="must be served over the OpenAI chat API"):
        await build_routing(config)


async def test_service_fastest_follows_observed_latency_even_on_cache_hits():
    fast_first = Route("chat", "chit-chat", ("openai/gpt-4o", "openai/gpt-4o-mini"), "fastest")
    service = RoutingService(_answering("chat"), (fast_first,))  # type: ignore[arg-type]
    service.latencies.observe("openai/gpt-4o", 2.0)
    service.latencies.observe("openai/gpt-4o-mini", 0.5)
    first = await service.decide([("user", "hello")])
    assert first.models == ("openai/gpt-4o-mini", "openai/gpt-4o")
    for _ in range(20):  # gpt-4o-mini slows down, request after request
        service.latencies.observe("openai/gpt-4o-mini", 5.0)
    again = await service.decide([("user", "hello")])
    assert again.cached is True
    assert again.models == ("openai/gpt-4o", "openai/gpt-4o-mini")


async def test_service_neither_caches_nor_pins_a_degraded_answer():
    backend = ScriptedBackend(
        lambda turns, routes: RouterAnswer("bug_fixing", "embedded", degraded=True)
    )
    service = RoutingService(backend, ROUTES)  # type: ignore[arg-type]
    first = await service.decide(TURNS, session="s1")
    second = await service.decide(TURNS, session="s1")
    assert first.route == second.route == "bug_fixing"
    assert second.cached is False
    assert second.pinned is False
    assert backend.calls == 2


async def test_service_cache_key_includes_the_route_models():
    service = RoutingService(_answering("bug_fixing"), ROUTES)  # type: ignore[arg-type]
    other = (ROUTES[0], Route("bug_fixing", ROUTES[1].description, ("openai/o3",)))
    first = await service.decide(TURNS)
    second = await service.decide(TURNS, other)
    assert first.models[0] != "openai/o3"
    assert second.models == ("openai/o3",)
    assert second.cached is False
