"""Turn raw config data, of any version, into one typed Config.

Tolerant by design: it also runs on configs with schema errors, skipping what it cannot
read, so the semantic rules can report every remaining mistake in the same run.
Deprecated forms are rewritten here (and reported as warnings):
- llm_providers -> model_providers; v0.1 `provider:` + bare model -> provider/model;
- the legacy listeners object -> the list form;
- v0.3 inline routing_preferences -> v0.4 top-level routes.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

from proxy.auth.keys import configured_digest
from proxy.config.durations import parse_duration
from proxy.config.model import (
    BUILTIN_OPTIONS,
    DEFAULT_MAX_UPSTREAM_RESPONSE_BYTES,
    RATE_LIMIT_UNITS,
    Admin,
    Agent,
    AgentRoute,
    ClientKey,
    Config,
    Endpoint,
    Filter,
    FilterType,
    Listener,
    ListenerAuth,
    ListenerType,
    ModelProvider,
    OnUnavailable,
    Overrides,
    PromptTarget,
    RateLimit,
    RouterSettings,
    Routing,
    RoutingPreference,
    Secret,
    SessionCache,
    SharedStateSettings,
    StateStorage,
    TraceStoreSettings,
    Tracing,
)
from proxy.config.model_index import ModelIndex
from proxy.config.problems import Path
from proxy.config.report import Reporter
from proxy.config.versions import version_tuple
from proxy.pricing import Price
from proxy.providers.catalog import PROVIDERS, spec_for

DEFAULT_PORTS = {ListenerType.MODEL: 12000, ListenerType.PROMPT: 10000, ListenerType.AGENT: 8001}
DEFAULT_ADDRESS = "0.0.0.0"
DEFAULT_TIMEOUT_S = 300.0
# Upstream's agent listeners wait 30 s for an agent; model calls get longer by default.
DEFAULT_TIMEOUTS = {ListenerType.AGENT: 30.0}
DEFAULT_MAX_RETRIES = 2


def normalize(data: dict, version: str, report: Reporter) -> Config:
    providers_key = "model_providers" if "model_providers" in data else "llm_providers"
    if providers_key == "llm_providers" and "llm_providers" in data:
        report.warning(
            "deprecated-key",
            "'llm_providers' is deprecated",
            ("llm_providers",),
            "rename it to 'model_providers'.",
            at_key=True,
        )
    providers = tuple(_providers(data, providers_key, report))
    aliases = {
        str(alias): spec["target"]
        for alias, spec in _mapping(data.get("model_aliases")).items()
        if isinstance(spec, dict) and isinstance(spec.get("target"), str)
    }
    fallbacks = {
        str(alias): _strings(spec.get("fallbacks"))
        for alias, spec in _mapping(data.get("model_aliases")).items()
        if isinstance(spec, dict) and spec.get("fallbacks")
    }
    listeners = _listeners(data, providers, report, _default_timeout(data))
    shared_state = _shared_state(_mapping(data.get("shared_state")))
    return Config(
        version=version,
        path=report.source_map.file,
        listeners=listeners,
        providers=providers,
        aliases=MappingProxyType(aliases),
        alias_fallbacks=MappingProxyType(fallbacks),
        routes=_routes(data, providers_key, version, report),
        agents=tuple(
            Agent(item["id"], str(item.get("url", "")), source=path)
            for path, item in _items(data, "agents")
            if isinstance(item.get("id"), str)
        ),
        filters=tuple(_filters(data)),
        endpoints=MappingProxyType(_endpoints(data)),
        prompt_targets=tuple(_prompt_targets(data)),
        system_prompt=_str(data.get("system_prompt")),
        ratelimits=tuple(_ratelimits(data)),
        tracing=_tracing(_mapping(data.get("tracing"))),
        admin=_admin(_mapping(data.get("admin"))),
        shared_state=shared_state,
        pricing=MappingProxyType(_pricing(_mapping(data.get("pricing")))),
        routing=_routing(
            _mapping(data.get("routing")), _mapping(data.get("overrides")), shared_state
        ),
        state_storage=_state_storage(_mapping(data.get("state_storage"))),
        overrides=_overrides(_mapping(data.get("overrides"))),
        mode=_str(data.get("mode")),
        prompt_guards=_freeze(_mapping(data.get("prompt_guards"))),
        model_metrics_sources=tuple(
            _freeze(item) for _, item in _items(data, "model_metrics_sources")
        ),
        prompt_caching=_freeze(_mapping(data.get("prompt_caching"))),
        models=ModelIndex(providers, aliases),
    )


def model_name(item: dict) -> str | None:
    """provider/model_id of a provider entry, reading the v0.1 `provider:` field too."""
    model = item.get("model")
    if not isinstance(model, str):
        return None
    legacy_provider = item.get("provider")
    if isinstance(legacy_provider, str) and legacy_provider and "/" not in model:
        return f"{legacy_provider}/{model}"
    return model


def _providers(data: dict, key: str, report: Reporter) -> Iterator[ModelProvider]:
    for path, item in _items(data, key):
        model = model_name(item)
        if model is None:
            continue
        if model != item["model"]:
            report.warning(
                "legacy-provider-field",
                f"'provider: {item['provider']}' with a bare model is the v0.1 form",
                (*path, "provider"),
                f"write `model: {model}` and drop 'provider'.",
                at_key=True,
            )
        prefix, slash, model_id = model.partition("/")
        interface = _str(item.get("provider_interface"))
        known = PROVIDERS.get(prefix)
        yield ModelProvider(
            name=_str(item.get("name")) or model,
            provider=prefix if slash else "",
            model_id=model_id if slash else model,
            spec=spec_for(prefix, interface),
            # Only a provider known by name has a default address; an interface does not.
            base_url=_str(item.get("base_url")) or (known.base_url if known else None),
            access_key=Secret(item["access_key"])
            if isinstance(item.get("access_key"), str)
            else None,
            default=item.get("default") is True,
            passthrough_auth=item.get("passthrough_auth") is True,
            http_host=_str(item.get("http_host")),
            headers=MappingProxyType(
                {str(k): str(v) for k, v in _mapping(item.get("headers")).items()}
            ),
            source=path,
        )


def _default_timeout(data: dict) -> float:
    """overrides.upstream_timeout_ms: the timeout of listeners that set none of their own."""
    millis = _mapping(data.get("overrides")).get("upstream_timeout_ms")
    return millis / 1000 if _is_int(millis) and millis > 0 else DEFAULT_TIMEOUT_S


def _listeners(
    data: dict, providers: tuple, report: Reporter, timeout_s: float
) -> tuple[Listener, ...]:
    raw = data.get("listeners")
    listeners: list[Listener] = []
    if isinstance(raw, list):
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                continue
            try:
                kind = ListenerType(item.get("type"))
            except ValueError:
                continue
            listeners.append(_listener(item, kind, ("listeners", index), timeout_s))
    elif isinstance(raw, dict):
        report.warning(
            "legacy-listeners",
            "the object form of 'listeners' (ingress_traffic/egress_traffic) is deprecated",
            ("listeners",),
            "write a list: listeners: [{name: ..., type: model|prompt|agent, port: ...}].",
            at_key=True,
        )
        for key, kind in (
            ("ingress_traffic", ListenerType.PROMPT),
            ("egress_traffic", ListenerType.MODEL),
        ):
            if isinstance(raw.get(key), dict):
                listeners.append(
                    _listener({"name": key, **raw[key]}, kind, ("listeners", key), timeout_s)
                )

    has_model_listener = any(lst.type is ListenerType.MODEL for lst in listeners)
    port = DEFAULT_PORTS[ListenerType.MODEL]
    if providers and not has_model_listener and all(lst.port != port for lst in listeners):
        # Upstream always serves its LLM gateway on 12000: agents call models through it.
        listeners.append(
            Listener(
                name="model_listener",
                type=ListenerType.MODEL,
                address=DEFAULT_ADDRESS,
                port=port,
                timeout_s=timeout_s,
                max_retries=DEFAULT_MAX_RETRIES,
                implicit=True,
            )
        )
    return tuple(listeners)


def _auth(raw: object, path: Path) -> ListenerAuth | None:
    """Client keys as digests: the key itself is not kept (rules check where it came from)."""
    if not isinstance(raw, dict):
        return None
    keys = tuple(
        ClientKey(id=entry["id"], digest=configured_digest(entry["key"]), source=entry_path)
        for entry_path, entry in _items(raw, "keys", path)
        if isinstance(entry.get("id"), str) and isinstance(entry.get("key"), str)
    )
    return ListenerAuth(keys)


def _listener(item: dict, kind: ListenerType, path: Path, timeout_s: float) -> Listener:
    port = item.get("port")
    retries = item.get("max_retries")
    return Listener(
        name=_str(item.get("name")) or f"{kind.value}_listener",
        type=kind,
        address=_str(item.get("address")) or DEFAULT_ADDRESS,
        port=port if _is_int(port) else DEFAULT_PORTS[kind],
        timeout_s=parse_duration(item.get("timeout"), DEFAULT_TIMEOUTS.get(kind, timeout_s)),
        max_retries=retries if _is_int(retries) and retries >= 0 else DEFAULT_MAX_RETRIES,
        router=_str(item.get("router")),
        auth=_auth(item.get("auth"), (*path, "auth")),
        agents=tuple(
            AgentRoute(
                id=agent["id"],
                description=str(agent.get("description", "")),
                default=agent.get("default") is True,
                input_filters=_strings(agent.get("input_filters")),
                source=agent_path,
            )
            for agent_path, agent in _items(item, "agents", path)
            if isinstance(agent.get("id"), str)
        ),
        input_filters=_strings(item.get("input_filters")),
        output_filters=_strings(item.get("output_filters")),
        source=path,
    )


def _routes(data: dict, providers_key: str, version: str, report: Reporter):
    routes: dict[str, RoutingPreference] = {}
    for path, item in _items(data, "routing_preferences"):
        name = item.get("name")
        if not isinstance(name, str) or name in routes:
            continue
        prefer = _mapping(item.get("selection_policy")).get("prefer")
        routes[name] = RoutingPreference(
            name=name,
            description=str(item.get("description", "")),
            models=_strings(item.get("models")),
            prefer=prefer if isinstance(prefer, str) else "none",
            examples=_strings(item.get("examples")),
            source=path,
        )

    modern = version_tuple(version) >= (0, 4)
    for provider_path, provider in _items(data, providers_key):
        model = model_name(provider)
        if model is None:
            continue
        inline = [
            (pref_path, pref)
            for pref_path, pref in _items(provider, "routing_preferences", provider_path)
            if isinstance(pref.get("name"), str)
        ]
        if modern and inline:
            # One warning per list, at its key, naming every route in it.
            unique = dict.fromkeys(pref["name"] for _, pref in inline)
            names = ", ".join(f"'{name}'" for name in unique)
            report.warning(
                "inline-routing-preferences",
                f"inline routing_preferences under {model} are deprecated in v0.4.0",
                (*provider_path, "routing_preferences"),
                f"move route{'s' if len(unique) > 1 else ''} {names} to the top-level "
                f"routing_preferences with `models: [{model}]`.",
                at_key=True,
            )
        for pref_path, pref in inline:
            # A name used twice is an error (rules.duplicates); the first one is kept.
            routes.setdefault(
                pref["name"],
                RoutingPreference(
                    name=pref["name"],
                    description=str(pref.get("description", "")),
                    models=(model,),
                    source=pref_path,
                ),
            )
    return tuple(routes.values())


def _filters(data: dict) -> Iterator[Filter]:
    for path, item in _items(data, "filters"):
        if not isinstance(item.get("id"), str):
            continue
        try:
            type_ = FilterType(_str(item.get("type")) or "mcp")
        except ValueError:
            continue  # the schema reports it
        builtin = type_ is FilterType.BUILTIN
        options = {key: item[key] for key in ALL_BUILTIN_OPTIONS if key in item}
        yield Filter(
            id=item["id"],
            url=_str(item.get("url")) or "",
            type=type_,
            transport=_str(item.get("transport")) or "streamable-http",
            tool=_str(item.get("tool")) or ("" if builtin else item["id"]),
            kind=(_str(item.get("kind")) or "") if builtin else type_.value,
            timeout_s=parse_duration(item.get("timeout")),
            on_error=_one_of(item.get("on_error"), ("fail_closed", "fail_open")),
            mode=_one_of(item.get("mode"), ("enforce", "observe")) or "enforce",
            options=MappingProxyType(options),
            source=path,
        )


ALL_BUILTIN_OPTIONS = tuple(sorted(set().union(*BUILTIN_OPTIONS.values())))


def _endpoints(data: dict) -> dict[str, Endpoint]:
    out = {}
    for name, item in _mapping(data.get("endpoints")).items():
        if not isinstance(item, dict):
            continue
        hosts = item.get("endpoint")
        out[str(name)] = Endpoint(
            name=str(name),
            hosts=(hosts,) if isinstance(hosts, str) else _strings(hosts),
            protocol=_str(item.get("protocol")) or "http",
            connect_timeout_s=parse_duration(item.get("connect_timeout")),
            timeout_s=parse_duration(item.get("timeout")),
            http_host=_str(item.get("http_host")),
            source=("endpoints", name),
        )
    return out


def _prompt_targets(data: dict) -> Iterator[PromptTarget]:
    for path, item in _items(data, "prompt_targets"):
        if isinstance(item.get("name"), str):
            yield PromptTarget(
                name=item["name"],
                description=str(item.get("description", "")),
                default=item.get("default") is True,
                endpoint=_freeze(_mapping(item.get("endpoint"))),
                parameters=tuple(_freeze(p) for _, p in _items(item, "parameters", path)),
                system_prompt=_str(item.get("system_prompt")),
                auto_llm_dispatch_on_response=item.get("auto_llm_dispatch_on_response") is True,
                source=path,
            )


def _ratelimits(data: dict) -> Iterator[RateLimit]:
    for path, item in _items(data, "ratelimits"):
        selector, limit = _mapping(item.get("selector")), _mapping(item.get("limit"))
        tokens, unit, key = limit.get("tokens"), limit.get("unit", "minute"), selector.get("key")
        # What the schema rejects (tokens < 1, an unknown unit) is reported there; the
        # entry is left out rather than served half-understood.
        if not (isinstance(item.get("model"), str) and _is_int(tokens) and tokens >= 1):
            continue
        if unit not in RATE_LIMIT_UNITS or not isinstance(key, str) or not key:
            continue
        value = selector.get("value")
        yield RateLimit(
            model=item["model"],
            header=key.strip().lower(),
            value=None if value in (None, "*") else str(value),
            tokens=tokens,
            unit=unit,
            source=path,
        )


def _tracing(raw: dict) -> Tracing:
    sampling = raw.get("random_sampling")
    attributes = _mapping(raw.get("span_attributes"))
    return Tracing(
        random_sampling=float(sampling) if _is_number(sampling) else 100.0,
        trace_internal=raw.get("trace_arch_internal") is True,
        otlp_endpoint=_str(raw.get("opentracing_grpc_endpoint")),
        header_prefixes=_strings(attributes.get("header_prefixes")),
        static_attributes=MappingProxyType(
            {str(k): str(v) for k, v in _mapping(attributes.get("static")).items()}
        ),
        exporters=tuple(_freeze(e) for e in raw.get("exporters", ()) if isinstance(e, dict))
        if isinstance(raw.get("exporters"), list)
        else (),
        store=_trace_store(_mapping(raw.get("store"))),
    )


def _trace_store(raw: dict) -> TraceStoreSettings:
    defaults = TraceStoreSettings()
    days, most = raw.get("retention_days"), raw.get("max_traces")
    return TraceStoreSettings(
        enabled=raw.get("enabled") is not False,
        path=_str(raw.get("path")),
        retention_days=float(days) if _is_number(days) and days > 0 else defaults.retention_days,
        max_traces=most if _is_int(most) and most > 0 else defaults.max_traces,
        capture_messages=raw.get("capture_messages") is not False,
    )


def _admin(raw: dict) -> Admin:
    defaults = Admin()
    port = raw.get("port")
    return Admin(
        enabled=raw.get("enabled") is not False,
        address=_str(raw.get("address")) or defaults.address,
        port=port if _is_int(port) and 0 <= port <= 65535 else None,
    )


def _pricing(raw: dict) -> dict[str, Price]:
    prices = {}
    for prefix, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        price_in, price_out, cached = (
            entry.get("input"),
            entry.get("output"),
            entry.get("cached_input"),
        )
        if _is_number(price_in) and _is_number(price_out):
            prices[str(prefix)] = Price(
                float(price_in), float(price_out), float(cached) if _is_number(cached) else None
            )
    return prices


def _shared_state(raw: dict) -> SharedStateSettings | None:
    url = _str(raw.get("url"))
    if url is None:
        return None  # absent, or without the url the schema requires: reported there
    mode = raw.get("on_unavailable")
    return SharedStateSettings(
        url=Secret(url),
        type=_str(raw.get("type")) or "redis",
        timeout_s=parse_duration(raw.get("timeout"), 0.1) or 0.1,
        on_unavailable=OnUnavailable(mode)
        if mode in tuple(OnUnavailable)
        else OnUnavailable.FAIL_OPEN,
    )


def _session_cache(raw: object, shared: SharedStateSettings | None) -> SessionCache:
    cache = _mapping(raw)
    url, kind = _str(cache.get("url")), _str(cache.get("type"))
    tenant = _str(cache.get("tenant_header"))
    if kind is None and shared is not None:
        # Affinity defaults to the shared store: pins hold across instances.
        return SessionCache(type="redis", url=shared.url, tenant_header=tenant)
    return SessionCache(
        type=kind or "memory", url=Secret(url) if url else None, tenant_header=tenant
    )


def _routing(raw: dict, overrides: dict, shared: SharedStateSettings | None = None) -> Routing:
    ttl, entries = raw.get("session_ttl_seconds"), raw.get("session_max_entries")
    return Routing(
        session_ttl_seconds=ttl if _is_int(ttl) and ttl > 0 else 600,
        session_max_entries=entries if _is_int(entries) and entries > 0 else 10000,
        route_on_user_only=raw.get("route_on_user_only") is True,
        session_cache=_session_cache(raw.get("session_cache"), shared),
        # Legacy routing.model names the router model; routing.llm_provider, its provider
        # entry, stands in for it when it is absent.
        router_model=_str(overrides.get("llm_routing_model"))
        or _str(raw.get("model"))
        or _str(raw.get("llm_provider")),
        router=_router(_mapping(raw.get("router"))),
    )


def _router(raw: dict) -> RouterSettings:
    defaults = RouterSettings()
    key = raw.get("access_key")
    margin, threshold, cache = (
        raw.get("escalate_below_margin"),
        raw.get("threshold"),
        raw.get("cache_size"),
    )
    keep_alive = raw.get("keep_alive")
    return RouterSettings(
        backend=_str(raw.get("backend")) or defaults.backend,
        model=_str(raw.get("model")),
        base_url=_str(raw.get("base_url")),
        access_key=Secret(key) if isinstance(key, str) and key else None,
        timeout_s=parse_duration(raw.get("timeout"), defaults.timeout_s),
        pull=raw.get("pull") is not False,
        keep_alive=keep_alive
        if isinstance(keep_alive, str | int) and not isinstance(keep_alive, bool)
        else defaults.keep_alive,
        escalate_below_margin=float(margin)
        if _is_number(margin) and margin >= 0
        else defaults.escalate_below_margin,
        threshold=float(threshold) if _is_number(threshold) else None,
        model_path=_str(raw.get("model_path")),
        cache_size=cache if _is_int(cache) and cache >= 0 else defaults.cache_size,
        learned_routes=_str(raw.get("learned_routes")),
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _state_storage(raw: dict) -> StateStorage:
    conn = raw.get("connection_string")
    return StateStorage(
        type=_str(raw.get("type")) or "sqlite",
        connection_string=Secret(conn) if isinstance(conn, str) else None,
        path=_str(raw.get("path")),
        timeout_s=parse_duration(raw.get("timeout"), 2.0) or 2.0,
        on_unavailable="fail_closed" if raw.get("on_unavailable") == "fail_closed" else "fail_open",
    )


_OVERRIDE_FIELDS = {
    "disable_signals",
    "use_agent_orchestrator",
    "upstream_connect_timeout",
    "upstream_tls_ca_path",
    "llm_routing_model",
    "agent_orchestration_model",
    "orchestrator_model_context_length",
    "optimize_context_window",
    "prompt_target_intent_matching_threshold",
    "max_upstream_response_bytes",
}


def _overrides(raw: dict) -> Overrides:
    context = raw.get("orchestrator_model_context_length")
    threshold = raw.get("prompt_target_intent_matching_threshold")
    max_answer = raw.get("max_upstream_response_bytes")
    return Overrides(
        disable_signals=raw.get("disable_signals") is True,
        use_agent_orchestrator=raw.get("use_agent_orchestrator") is True,
        upstream_connect_timeout_s=parse_duration(raw.get("upstream_connect_timeout"), 5.0),
        upstream_tls_ca_path=_str(raw.get("upstream_tls_ca_path")),
        llm_routing_model=_str(raw.get("llm_routing_model")),
        agent_orchestration_model=_str(raw.get("agent_orchestration_model")),
        orchestrator_model_context_length=context if _is_int(context) and context > 0 else 8192,
        optimize_context_window=raw.get("optimize_context_window") is True,
        prompt_target_intent_matching_threshold=float(threshold) if _is_number(threshold) else None,
        max_upstream_response_bytes=max_answer
        if _is_int(max_answer) and max_answer >= 1024
        else DEFAULT_MAX_UPSTREAM_RESPONSE_BYTES,
        other=_freeze({k: v for k, v in raw.items() if k not in _OVERRIDE_FIELDS}),
    )


# --- tolerant accessors -------------------------------------------------------------


def _items(parent: object, key: str, base: Path = ()) -> Iterator[tuple[Path, dict]]:
    """(path, item) for each mapping in parent[key] when that is a list; nothing otherwise."""
    value = parent.get(key) if isinstance(parent, dict) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield (*base, key, index), item


def _mapping(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _one_of(value: object, allowed: tuple[str, ...]) -> str | None:
    """A value of a closed set, or None (the schema reports anything else)."""
    return value if value in allowed else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _freeze(value: object):
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value
