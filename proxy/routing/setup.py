"""Which router backend a config gets, made ready before the listener takes traffic.

`auto` (the default) picks, in order: the router LLM the config names (it decides
everything, as upstream); a router model in a running Ollama, which then only decides
what the embedded router is unsure of (hybrid); the embedded CPU router alone. Anything
that cannot start is said plainly and replaced by the embedded router: routing never
stops the gateway from serving.
"""

from __future__ import annotations

from proxy.config.model import Config, RouterSettings
from proxy.routing.backends.base import RouterUnavailable
from proxy.routing.backends.embedded import EmbeddedBackend
from proxy.routing.backends.hybrid import HybridBackend
from proxy.routing.backends.ollama_router import OllamaBackend, ProgressCallback
from proxy.routing.backends.openai_router import OpenAICompatibleBackend
from proxy.routing.routes import routes_from_config
from proxy.routing.service import RoutingService


class RouterSetupError(Exception):
    """The config asks for a router that cannot be built at all (not merely unreachable)."""


async def build_routing(
    config: Config, *, progress: ProgressCallback | None = None, probe_ollama: bool = True
) -> RoutingService:
    settings = config.routing.router
    routes = routes_from_config(config)
    embedded = EmbeddedBackend(settings.model_path, settings.threshold)
    notes: list[str] = []
    backend = await _choose(config, settings, embedded, notes, progress, probe_ollama, routes)
    service = RoutingService(
        backend,
        routes,
        cache_size=settings.cache_size,
        session_ttl_s=config.routing.session_ttl_seconds,
        session_max_entries=config.routing.session_max_entries,
        prices=config.pricing,
    )
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
    # The caller shows the notes (the start-up panel, `plano route --explain`): logged
    # here as well, `plano up` said each of them twice.
    service.notes = [*notes, f"router: {service.backend.describe()}"]
    return service


async def _choose(config, settings: RouterSettings, embedded, notes, progress, probe, routes):
    kind = settings.backend
    named_model = settings.model or config.routing.router_model
    if kind == "embedded":
        return embedded
    if kind == "openai-compatible":
        return _openai_backend(config, settings, named_model, required=True)
    if kind == "ollama":
        return await _ready_ollama(settings, named_model, notes, progress) or embedded
    if kind == "hybrid":
        llm = _openai_backend(config, settings, named_model, required=False)
        llm = llm or await _ready_ollama(settings, named_model, notes, progress)
        if llm is None:
            return embedded
        return HybridBackend(embedded, llm, settings.escalate_below_margin)
    # auto
    if named_model:
        llm = _openai_backend(config, settings, named_model, required=False)
        return llm or await _ready_ollama(settings, named_model, notes, progress) or embedded
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


async def _ready_ollama(settings, model, notes, progress, backend=None) -> OllamaBackend | None:
    backend = backend or OllamaBackend(
        model, settings.base_url, settings.timeout_s, settings.keep_alive, settings.pull
    )
    try:
        await backend.ensure_model(progress)
    except RouterUnavailable as exc:
        notes.append(f"{exc}; routing uses the embedded CPU router")
        await backend.close()
        return None
    return backend


def _openai_backend(config: Config, settings: RouterSettings, model: str | None, required: bool):
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
                resolution.model_id, target.url, dict(target.headers), settings.timeout_s
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
        return OpenAICompatibleBackend(model or "Arch-Router", url, headers, settings.timeout_s)
    if required:
        raise RouterSetupError(
            "routing.router.backend is openai-compatible but no endpoint is known: set "
            "routing.router.base_url, or name a configured model provider in routing.router.model"
        )
    return None
