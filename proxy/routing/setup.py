"""Which router backend a config gets, made ready before the listener takes traffic.

`auto` (the default) picks, in order: the router LLM the config names (it decides
everything, as upstream); a router model in a running Ollama, which then only decides
what the embedded router is unsure of (hybrid); the embedded CPU router alone. Anything
that cannot start is said plainly and replaced by the embedded router: routing never
stops the gateway from serving.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from proxy.config.model import Config, Listener, RouterSettings
from proxy.routing.backends.base import RouterUnavailable
from proxy.routing.backends.embedded import EmbeddedBackend
from proxy.routing.backends.hybrid import HybridBackend
from proxy.routing.backends.llm_prompting import RouterPrompting
from proxy.routing.backends.ollama_router import OllamaBackend, ProgressCallback
from proxy.routing.backends.openai_router import OpenAICompatibleBackend
from proxy.routing.conversation import DEFAULT_TOKEN_BUDGET
from proxy.routing.learned import LearnedRoutesError, apply_learned, read_learned
from proxy.routing.pins import PinStore
from proxy.routing.prompts import PromptStyle, style_for
from proxy.routing.routes import Route, routes_from_config
from proxy.routing.service import RoutingService


class RouterSetupError(Exception):
    """The config asks for a router that cannot be built at all (not merely unreachable)."""


async def build_routing(
    config: Config,
    *,
    progress: ProgressCallback | None = None,
    probe_ollama: bool = True,
    pins: PinStore | None = None,
) -> RoutingService:
    """`pins`: the affinity cache (routing.session_cache) when it is not in memory."""
    settings = config.routing.router
    notes: list[str] = []
    routes = _with_learned(routes_from_config(config), settings.learned_routes, notes)
    embedded = EmbeddedBackend(settings.model_path, settings.threshold)
    backend = await _choose(config, settings, embedded, notes, progress, probe_ollama, routes)
    service = RoutingService(
        backend,
        routes,
        cache_size=settings.cache_size,
        session_ttl_s=config.routing.session_ttl_seconds,
        session_max_entries=config.routing.session_max_entries,
        prices=config.pricing,
        pins=pins,
    )
    await _start(service, embedded, notes)
    # The caller shows the notes (the start-up panel, `plano route --explain`): logged
    # here as well, `plano up` said each of them twice.
    service.notes = [*notes, f"router: {service.backend.describe()}"]
    return service


def _with_learned(routes: tuple[Route, ...], path: str | None, notes: list[str]):
    """The config's routes with the prompts `plano route --learn` wrote, when asked for."""
    if not path or not routes:
        return routes
    try:
        learned = read_learned(Path(path).expanduser())
    except LearnedRoutesError as exc:
        notes.append(f"learned routes not loaded: {exc}")
        return routes
    routes, unknown = apply_learned(routes, learned)
    used = sum(len(learned.routes[r.name].examples) for r in routes if r.name in learned.routes)
    when = (
        time.strftime(" (learned %Y-%m-%d %H:%M)", time.localtime(learned.learned_at))
        if learned.learned_at
        else ""
    )
    gone = f"; not in the config, left out: {', '.join(unknown)}" if unknown else ""
    notes.append(
        f"learned routes: {used} prompts from traffic for "
        f"{sum(r.name in learned.routes for r in routes)} of {len(routes)} routes, "
        f"from {path}{when}{gone}"
    )
    return routes


async def _start(service: RoutingService, embedded: EmbeddedBackend, notes: list[str]) -> None:
    """Start the chosen backend; one that cannot start gives way to the embedded router."""
    backend = service.backend
    try:
        await service.start()
    except RouterUnavailable as exc:
        if backend is embedded:
            await embedded.close()
            raise RouterSetupError(str(exc)) from None
        notes.append(f"{backend.describe()} could not start ({exc}); using the embedded router")
        # The failed backend goes; the embedded router it may contain stays.
        await (backend.llm if isinstance(backend, HybridBackend) else backend).close()
        service.backend = embedded
        try:
            await service.start()
        except RouterUnavailable as again:
            await embedded.close()
            raise RouterSetupError(str(again)) from None


async def _choose(config, settings: RouterSettings, embedded, notes, progress, probe, routes):
    kind = settings.backend
    named_model = settings.model or config.routing.router_model
    prompting = _router_prompting(config, named_model)
    if kind == "embedded":
        return embedded
    if kind == "openai-compatible":
        return _openai_backend(config, settings, named_model, True, prompting)
    if kind == "ollama":
        return await _ready_ollama(settings, named_model, notes, progress, None, prompting) or (
            embedded
        )
    if kind == "hybrid":
        llm = _openai_backend(config, settings, named_model, False, prompting)
        llm = llm or await _ready_ollama(settings, named_model, notes, progress, None, prompting)
        if llm is None:
            return embedded
        return HybridBackend(embedded, llm, settings.escalate_below_margin)
    # auto
    if named_model:
        llm = _openai_backend(config, settings, named_model, False, prompting)
        llm = llm or await _ready_ollama(settings, named_model, notes, progress, None, prompting)
        return llm or embedded
    if routes and probe:
        ollama = OllamaBackend(
            None, settings.base_url, settings.timeout_s, settings.keep_alive, settings.pull
        )
        # An Ollama that happens to run helps; one that does not is no news: the config
        # asked for no router LLM, and the embedded router is the default.
        if await ollama.reachable(timeout_s=0.5):
            llm = await _ready_ollama(settings, None, notes, progress, ollama)
            if llm is not None:
                return HybridBackend(embedded, llm, settings.escalate_below_margin)
        else:
            await ollama.close()
    return embedded


def _router_prompting(config: Config, model: str | None) -> RouterPrompting | None:
    """A named router model's prompting: an orchestrator-v1 model reads as much of the
    conversation as overrides.orchestrator_model_context_length allows."""
    if not model:
        return None  # the backend's default model, with its default budget
    style = style_for(model)
    budget = (
        config.overrides.orchestrator_model_context_length
        if style is PromptStyle.ORCHESTRATOR
        else DEFAULT_TOKEN_BUDGET
    )
    return RouterPrompting(model, budget)


async def _ready_ollama(
    settings, model, notes, progress, backend=None, prompting=None
) -> OllamaBackend | None:
    backend = backend or OllamaBackend(
        model,
        settings.base_url,
        settings.timeout_s,
        settings.keep_alive,
        settings.pull,
        prompting=prompting,
    )
    try:
        await backend.ensure_model(progress)
    except RouterUnavailable as exc:
        notes.append(f"{exc}; routing uses the embedded CPU router")
        await backend.close()
        return None
    return backend


def _openai_backend(
    config: Config,
    settings: RouterSettings,
    model: str | None,
    required: bool,
    prompting: RouterPrompting | None = None,
):
    """The router LLM as an OpenAI-compatible endpoint: a configured provider, or base_url."""
    from proxy.providers.catalog import Wire
    from proxy.upstream.targets import TargetError, target_for

    if model:
        resolution = config.models.resolve(model)
        if resolution is not None and not resolution.provider.is_wildcard:
            try:
                target = target_for(resolution.provider, resolution.model_id)
            except TargetError as exc:
                raise RouterSetupError(f"router model {model}: {exc}") from None
            if target.wire is not Wire.OPENAI:
                raise RouterSetupError(
                    f"router model {model} must be served over the OpenAI chat API; "
                    f"{resolution.provider.provider} speaks another"
                )
            return OpenAICompatibleBackend(
                resolution.model_id,
                target.url,
                dict(target.headers),
                settings.timeout_s,
                prompting=prompting,
            )
    if settings.base_url and settings.backend == "openai-compatible":
        base = settings.base_url.rstrip("/")
        url = (
            base
            if base.endswith("/chat/completions")
            else (
                f"{base}/chat/completions"
                if base.endswith("/v1")
                else f"{base}/v1/chat/completions"
            )
        )
        headers = {}
        if settings.access_key is not None:
            headers["Authorization"] = f"Bearer {settings.access_key.reveal()}"
        return OpenAICompatibleBackend(
            model or "Arch-Router", url, headers, settings.timeout_s, prompting=prompting
        )
    if required:
        raise RouterSetupError(
            "routing.router.backend is openai-compatible but no endpoint is known: set "
            "routing.router.base_url, or name a configured model provider in routing.router.model"
        )
    return None


# --- agent listeners --------------------------------------------------------------------

# Upstream's name for the orchestrator when the config names none (it calls a hosted one).
DEFAULT_ORCHESTRATOR = "Plano-Orchestrator"


def orchestrator_model(config: Config) -> str | None:
    """The orchestrator LLM the config names, upstream's way: overrides.llm_routing_model,
    else overrides.agent_orchestration_model."""
    overrides = config.overrides
    return overrides.llm_routing_model or overrides.agent_orchestration_model


def agent_routes(listener: Listener) -> tuple[Route, ...]:
    """An agent listener's agents as routes: the description is what the router reads."""
    return tuple(Route(agent.id, agent.description) for agent in listener.agents)


async def build_orchestration(
    config: Config,
    listener: Listener,
    *,
    progress: ProgressCallback | None = None,
    probe_ollama: bool = True,
) -> RoutingService:
    """The router that picks an agent listener's agents.

    With an orchestrator LLM reachable at start-up, `auto` (and `hybrid`) asks it only
    when the embedded router is unsure, and `openai-compatible` or `ollama` asks it
    always; without one, the embedded router picks from the descriptions, offline.
    """
    settings = config.routing.router
    embedded = EmbeddedBackend(settings.model_path, settings.threshold, per_clause=True)
    notes: list[str] = []
    llm = None
    if settings.backend != "embedded":
        llm = await _orchestrator_llm(config, settings, notes, progress, probe_ollama)
    if llm is None:
        backend = embedded
    elif settings.backend in ("openai-compatible", "ollama"):
        backend = llm
    else:
        backend = HybridBackend(embedded, llm, settings.escalate_below_margin)
    service = RoutingService(
        backend,
        agent_routes(listener),
        cache_size=settings.cache_size,
        session_ttl_s=config.routing.session_ttl_seconds,
        session_max_entries=config.routing.session_max_entries,
    )
    await _start(service, embedded, notes)
    service.notes = [*notes, f"orchestrator: {service.backend.describe()}"]  # for the panel
    return service


async def _orchestrator_llm(config, settings, notes, progress, probe):
    model = orchestrator_model(config)
    prompting = RouterPrompting(
        model or DEFAULT_ORCHESTRATOR,
        config.overrides.orchestrator_model_context_length,
        style=PromptStyle.ORCHESTRATOR,
        agent_routes=True,
    )
    resolution = config.models.resolve(model) if model else None
    if resolution is not None and resolution.provider.provider == "ollama":
        # An Ollama provider is asked through Ollama's own API, which can pull the model.
        base = (resolution.provider.base_url or "").rstrip("/").removesuffix("/v1") or None
        ollama_settings = dataclasses.replace(settings, base_url=base)
        return await _ready_ollama(
            ollama_settings, resolution.model_id, notes, progress, prompting=prompting
        )
    required = settings.backend == "openai-compatible"
    llm = _openai_backend(config, settings, model or DEFAULT_ORCHESTRATOR, required, prompting)
    if llm is not None:
        if await llm.reachable():
            return llm
        notes.append(
            f"the orchestrator {llm.describe()} is not reachable; the embedded router picks agents"
        )
        await llm.close()
        return None
    if model is None:
        notes.append(
            "no orchestrator model is configured (overrides.agent_orchestration_model): "
            "the embedded router picks agents from their descriptions"
        )
        return None
    if not probe:
        notes.append(f"the orchestrator model {model} is not a configured model provider")
        return None
    return await _ready_ollama(settings, model, notes, progress, prompting=prompting)
