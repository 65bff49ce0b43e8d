"""OllamaBackend through the official client against a stand-in Ollama, and build_routing."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator

import pytest
from conftest import check
from fakes.ollama_server import (
    PULL_MIDWAY_ERROR,
    RUNNER_CRASHED,
    UNKNOWN_MANIFEST,
    FakeOllama,
    PullMode,
    closed_port_url,
    ollama_app,
)
from fakes.server_thread import ServerThread

from proxy.config import Mode
from proxy.routing.backends.base import RouterUnavailable
from proxy.routing.backends.embedded import EmbeddedBackend
from proxy.routing.backends.hybrid import HybridBackend
from proxy.routing.backends.ollama_router import (
    DEFAULT_MODEL,
    INSTALL_HINT,
    OllamaBackend,
    PullProgress,
    default_host,
)
from proxy.routing.conversation import truncate
from proxy.routing.prompts import PromptStyle, build_prompt, prompt_chars
from proxy.routing.routes import Route
from proxy.routing.setup import build_routing

ORCHESTRATOR = "hf.co/katanemo/Plano-Orchestrator-4B.gguf:Q4_K_M"
ROUTES = (
    Route("code_generation", "writing new code, functions and programs", ("openai/gpt-4o",)),
    Route("bug_fixing", "debugging and fixing errors in existing code", ("openai/gpt-4o-mini",)),
    Route("small_talk", "greetings and casual conversation", ("openai/gpt-4o-mini",)),
)
DEBUG_TURNS = [
    ("user", "hello there"),
    ("assistant", "Hi! How can I help?"),
    ("user", "please help me with debugging this crash, I keep fixing errors"),
]


@pytest.fixture
def state() -> FakeOllama:
    return FakeOllama(installed=[DEFAULT_MODEL])


@pytest.fixture
def server(state: FakeOllama) -> Iterator[ServerThread]:
    with ServerThread(ollama_app(state)) as running:
        yield running


@pytest.fixture
async def backend(server: ServerThread):
    made = OllamaBackend(host=server.base_url, timeout_s=5)
    yield made
    await made.close()


# --------------------------------------------------------------------------- connectivity


async def test_reachable_when_running(backend: OllamaBackend, state: FakeOllama):
    assert await backend.reachable()
    assert state.last("/api/ps").method == "GET"


async def test_unreachable_on_a_closed_port():
    backend = OllamaBackend(host=closed_port_url())
    try:
        assert not await backend.reachable()
    finally:
        await backend.close()


async def test_unreachable_when_the_server_errors(backend: OllamaBackend, state: FakeOllama):
    state.fail("/api/ps", 500)
    assert not await backend.reachable()


async def test_has_model(server: ServerThread, state: FakeOllama):
    present = OllamaBackend(host=server.base_url)
    absent = OllamaBackend("qwen3:0.6b", host=server.base_url)
    try:
        assert await present.has_model()
        assert not await absent.has_model()
        assert state.last("/api/show").body == {"model": "qwen3:0.6b"}
    finally:
        await present.close()
        await absent.close()


async def test_has_model_on_a_server_error_is_unavailable(backend, state: FakeOllama):
    state.fail("/api/show", 500, "something broke")
    with pytest.raises(RouterUnavailable, match="something broke"):
        await backend.has_model()


def test_default_host_follows_ollama_host(monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert default_host() == "http://localhost:11434"
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9999")
    assert default_host() == "http://127.0.0.1:9999"
    monkeypatch.setenv("OLLAMA_HOST", "https://ollama.internal:443")
    assert default_host() == "https://ollama.internal:443"
    assert OllamaBackend(host="http://h:1/").host == "http://h:1"


# --------------------------------------------------------------------------- pulling


async def test_ensure_model_pulls_a_missing_model_with_progress(server, state: FakeOllama):
    state.installed.clear()
    seen: list[PullProgress] = []
    backend = OllamaBackend(host=server.base_url)
    try:
        assert await backend.ensure_model(seen.append) is True
        assert state.has(DEFAULT_MODEL)
        assert await backend.ensure_model(seen.append) is False  # already there: no pull
    finally:
        await backend.close()
    assert len(state.to("/api/pull")) == 1
    assert state.last("/api/pull").body == {
        "model": DEFAULT_MODEL,
        "insecure": False,
        "stream": True,
    }
    assert seen[0].status == "pulling manifest"
    assert [p.status for p in seen[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    layers: dict[str, list[PullProgress]] = {}
    for update in seen:
        if update.digest is not None:
            layers.setdefault(update.digest, []).append(update)
    assert len(layers) >= 2
    for digest, updates in layers.items():
        assert digest.startswith("sha256:")
        assert all(u.status == f"pulling {digest[7:19]}" for u in updates)
        assert len({u.total for u in updates}) == 1
        assert updates[0].total > 0
        completed = [u.completed for u in updates]
        assert completed == sorted(completed)
        assert completed[-1] == updates[0].total


async def test_ensure_model_with_pull_disabled_names_the_command(server, state: FakeOllama):
    backend = OllamaBackend("qwen3:0.6b", host=server.base_url, pull=False)
    try:
        with pytest.raises(RouterUnavailable) as caught:
            await backend.ensure_model()
    finally:
        await backend.close()
    assert "ollama pull qwen3:0.6b" in str(caught.value)
    assert "routing.router.pull" in str(caught.value)
    assert state.to("/api/pull") == []


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (PullMode.FAIL_MIDWAY, PULL_MIDWAY_ERROR),
        (PullMode.UNKNOWN, UNKNOWN_MANIFEST),
        (PullMode.DROP_MIDWAY, "failed"),
    ],
)
async def test_a_failed_pull_is_unavailable_with_the_reason(server, state, mode, message):
    state.installed.clear()
    state.pull_mode = mode
    seen: list[PullProgress] = []
    backend = OllamaBackend("katanemo/missing", host=server.base_url)
    try:
        with pytest.raises(RouterUnavailable) as caught:
            await backend.ensure_model(seen.append)
    finally:
        await backend.close()
    assert message in str(caught.value)
    assert "pulling katanemo/missing failed" in str(caught.value)
    assert not state.has("katanemo/missing")
    assert seen
    assert seen[0].status == "pulling manifest"
    assert all(p.status != "success" for p in seen)


async def test_a_pull_refused_with_an_http_error_is_unavailable(backend, state: FakeOllama):
    state.installed.clear()
    state.fail("/api/pull", 500, "registry unreachable")
    with pytest.raises(RouterUnavailable, match="registry unreachable"):
        await backend.ensure_model()


async def test_ensure_model_when_ollama_is_down_says_how_to_install():
    backend = OllamaBackend(host=closed_port_url())
    try:
        with pytest.raises(RouterUnavailable) as caught:
            await backend.ensure_model()
    finally:
        await backend.close()
    assert INSTALL_HINT in str(caught.value)
    assert "https://ollama.com/download" in str(caught.value)


# --------------------------------------------------------------------------- loading


async def test_start_loads_the_model_and_keeps_it_loaded(backend, state: FakeOllama):
    await backend.start()
    load = state.last("/api/generate").body
    assert load["model"] == DEFAULT_MODEL
    assert load["prompt"] == ""
    assert load["keep_alive"] == -1
    assert load["stream"] is False
    ps = await backend._ollama().ps()
    assert [m.model for m in ps.models] == [DEFAULT_MODEL]
    assert ps.models[0].expires_at.year > 2100  # keep_alive -1: never unloaded


async def test_start_passes_a_duration_keep_alive(server, state: FakeOllama):
    backend = OllamaBackend(host=server.base_url, keep_alive="5m")
    try:
        await backend.start()
    finally:
        await backend.close()
    assert state.last("/api/generate").body["keep_alive"] == "5m"


async def test_start_of_a_missing_model_is_unavailable(server, state: FakeOllama):
    backend = OllamaBackend("nope:1b", host=server.base_url)
    try:
        with pytest.raises(RouterUnavailable, match="could not load nope:1b"):
            await backend.start()
    finally:
        await backend.close()


async def test_start_when_ollama_is_down_is_unavailable():
    backend = OllamaBackend(host=closed_port_url())
    try:
        with pytest.raises(RouterUnavailable, match="not reachable"):
            await backend.start()
    finally:
        await backend.close()


# --------------------------------------------------------------------------- deciding


async def test_decide_sends_one_user_message_with_the_arch_router_prompt(backend, state):
    answer = await backend.decide(DEBUG_TURNS, ROUTES)
    assert answer.route == "bug_fixing"
    assert answer.backend == "ollama"
    assert answer.named == ("bug_fixing",)
    assert DEFAULT_MODEL in answer.detail

    sent = state.last("/api/chat").body
    assert sent["model"] == DEFAULT_MODEL
    assert sent["options"] == {"temperature": 0}
    assert sent["keep_alive"] == -1
    assert sent["stream"] is False
    assert len(sent["messages"]) == 1
    assert sent["messages"][0]["role"] == "user"
    expected = build_prompt(
        PromptStyle.ARCH_ROUTER,
        ROUTES,
        truncate(DEBUG_TURNS, prompt_chars=prompt_chars(PromptStyle.ARCH_ROUTER)),
    )
    assert sent["messages"][0]["content"] == expected
    assert '"name":"bug_fixing"' in expected  # compact routes: the Arch-Router format


async def test_decide_answers_other_as_no_route(backend, state):
    answer = await backend.decide([("user", "zzz qqq")], ROUTES)
    assert answer.route is None
    assert answer.named == ()


async def test_an_orchestrator_model_gets_the_orchestrator_prompt(server, state: FakeOllama):
    state.installed.append(ORCHESTRATOR)
    backend = OllamaBackend(ORCHESTRATOR, host=server.base_url)
    prompts: list[str] = []

    def answer(prompt: str, model: str) -> str:
        prompts.append(prompt)
        return '```json\n{"route": ["bug_fixing", "code_generation"]}\n```'

    state.answer = answer
    try:
        decided = await backend.decide(DEBUG_TURNS, ROUTES)
    finally:
        await backend.close()
    assert decided.route == "bug_fixing"
    assert decided.named == ("bug_fixing", "code_generation")
    assert state.last("/api/chat").body["model"] == ORCHESTRATOR
    assert "## Response Format" in prompts[0]
    assert '{"name": "bug_fixing", "description":' in prompts[0]
    assert "orchestrator-v1" in backend.describe()


async def test_the_default_answer_follows_the_orchestrator_format(server, state: FakeOllama):
    state.installed.append(ORCHESTRATOR)
    backend = OllamaBackend(ORCHESTRATOR, host=server.base_url)
    try:
        decided = await backend.decide(DEBUG_TURNS, ROUTES)
        nothing = await backend.decide([("user", "zzz")], ROUTES)
    finally:
        await backend.close()
    assert decided.route == "bug_fixing"
    assert "['bug_fixing']" in decided.detail or '["bug_fixing"]' in decided.detail
    assert nothing.route is None


async def test_an_invented_route_name_is_no_route(backend, state: FakeOllama):
    state.answer = lambda prompt, model: '{"route": "poetry"}'
    answer = await backend.decide(DEBUG_TURNS, ROUTES)
    assert answer.route is None
    assert answer.named == ()
    assert "unknown route 'poetry' ignored" in answer.detail


async def test_an_unreadable_answer_is_unavailable(backend, state: FakeOllama):
    state.answer = lambda prompt, model: "I would pick bug fixing."
    with pytest.raises(RouterUnavailable, match="ollama: no JSON object"):
        await backend.decide(DEBUG_TURNS, ROUTES)


async def test_a_slow_router_times_out(server, state: FakeOllama):
    state.delay_s = 30
    backend = OllamaBackend(host=server.base_url, timeout_s=0.3)
    try:
        with pytest.raises(RouterUnavailable, match=r"no answer within 0\.3s"):
            await backend.decide(DEBUG_TURNS, ROUTES)
    finally:
        await backend.close()
    assert len(state.to("/api/chat")) == 1


@pytest.mark.parametrize(
    ("status", "message"), [(500, RUNNER_CRASHED), (404, "model 'x' not found")]
)
async def test_http_errors_are_unavailable(backend, state: FakeOllama, status, message):
    state.fail("/api/chat", status, message)
    with pytest.raises(RouterUnavailable) as caught:
        await backend.decide(DEBUG_TURNS, ROUTES)
    assert message in str(caught.value)
    assert f"HTTP {status}" in str(caught.value)
    # The failure was one request's: the next decision works again.
    assert (await backend.decide(DEBUG_TURNS, ROUTES)).route == "bug_fixing"


async def test_a_missing_model_at_decision_time_is_unavailable(server, state: FakeOllama):
    backend = OllamaBackend("gone:1b", host=server.base_url)
    try:
        with pytest.raises(RouterUnavailable, match="model 'gone:1b' not found"):
            await backend.decide(DEBUG_TURNS, ROUTES)
    finally:
        await backend.close()


async def test_decide_when_ollama_is_down_is_unavailable():
    backend = OllamaBackend(host=closed_port_url())
    try:
        with pytest.raises(RouterUnavailable, match=r"ollama at http://127\.0\.0\.1"):
            await backend.decide(DEBUG_TURNS, ROUTES)
    finally:
        await backend.close()


async def test_the_stand_in_streams_chat_as_ndjson(backend, state: FakeOllama):
    # The router never streams, but the stand-in must behave like Ollama if asked to.
    parts = [
        part
        async for part in await backend._ollama().chat(
            DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]
    assert parts[-1].done is True
    assert parts[-1].done_reason == "stop"
    assert parts[-1].eval_count >= 1
    assert all(p.done is False for p in parts[:-1])
    assert json.loads("".join(p.message.content for p in parts)) == {"route": "other"}


# --------------------------------------------------------------------------- build_routing


def _config(router_yaml: str):
    text = textwrap.dedent("""\
        version: v0.4.0
        listeners: [{name: m, type: model}]
        model_providers:
          - {model: openai/gpt-4o, access_key: $K, default: true}
          - {model: openai/gpt-4o-mini, access_key: $K}
        routing_preferences:
          - {name: code_generation, description: writing new code, models: [openai/gpt-4o]}
          - name: bug_fixing
            description: debugging and fixing errors in existing code
            models: [openai/gpt-4o-mini, openai/gpt-4o]
            selection_policy: {prefer: cheapest}
        routing:
        """) + textwrap.indent(textwrap.dedent(router_yaml), "  ")
    result = check(text, env={"K": "sk-test"}, mode=Mode.SERVE)
    assert result.ok, result.problems
    return result.config


async def test_build_routing_pulls_the_ollama_model_and_routes(server, state: FakeOllama):
    state.installed.clear()
    config = _config(f"""\
        router:
          backend: ollama
          base_url: {server.base_url}
          timeout: 5s
        """)
    seen: list[PullProgress] = []
    service = await build_routing(config, progress=seen.append)
    try:
        assert isinstance(service.backend, OllamaBackend)
        assert state.has(DEFAULT_MODEL)
        assert seen[-1].status == "success"
        assert any(p.total for p in seen)
        assert state.last("/api/generate").body["prompt"] == ""  # loaded before traffic
        assert service.notes[-1].startswith("router: ollama ")
        decision = await service.decide(DEBUG_TURNS)
    finally:
        await service.close()
    assert decision.route == "bug_fixing"
    assert decision.backend == "ollama"
    assert decision.models == ("openai/gpt-4o-mini", "openai/gpt-4o")  # cheapest first
    assert decision.fallback is None


async def test_build_routing_with_ollama_down_falls_back_to_embedded():
    # Needs the embedded router (proxy.routing.embedded) and its weights.
    config = _config(f"""\
        router:
          backend: ollama
          base_url: {closed_port_url()}
        """)
    service = await build_routing(config)
    try:
        assert isinstance(service.backend, EmbeddedBackend)
        notes = " ".join(service.notes)
        assert "Ollama is not running" in notes
        assert "https://ollama.com/download" in notes
        assert "ollama serve" in notes
        assert "embedded" in notes
    finally:
        await service.close()


async def test_build_routing_auto_escalates_to_a_running_ollama(server, state: FakeOllama):
    # Needs the embedded router (proxy.routing.embedded) and its weights.
    config = _config(f"""\
        router:
          base_url: {server.base_url}
        """)
    service = await build_routing(config)
    try:
        assert isinstance(service.backend, HybridBackend)
        assert isinstance(service.backend.llm, OllamaBackend)
        assert state.last("/api/generate").body["model"] == DEFAULT_MODEL
    finally:
        await service.close()
