"""The normalized, typed and immutable config the proxy runs on.

Every entity remembers the YAML path it came from (`source`), so semantic rules and
runtime errors can point back at the exact line of the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from proxy.config.problems import Path
from proxy.pricing import Price
from proxy.providers.catalog import ProviderSpec, Wire

if TYPE_CHECKING:
    from proxy.config.model_index import ModelIndex

EMPTY: Mapping = MappingProxyType({})


class Secret:
    """A credential that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def _empty() -> Mapping:
    return field(default_factory=lambda: EMPTY)


class ListenerType(StrEnum):
    MODEL = "model"
    PROMPT = "prompt"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class AgentRoute:
    id: str
    description: str
    default: bool = False
    input_filters: tuple[str, ...] = ()
    source: Path = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    type: ListenerType
    address: str
    port: int
    timeout_s: float
    max_retries: int
    router: str | None = None
    agents: tuple[AgentRoute, ...] = ()
    input_filters: tuple[str, ...] = ()
    output_filters: tuple[str, ...] = ()
    implicit: bool = False  # added by normalization, not written in the file
    auth: ListenerAuth | None = None  # client keys this listener requires
    source: Path = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One accepted client key: who holds it, and the SHA-256 of the key (never the key)."""

    id: str
    digest: bytes = field(repr=False)
    source: Path = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListenerAuth:
    keys: tuple[ClientKey, ...]


@dataclass(frozen=True, slots=True)
class ModelProvider:
    name: str
    provider: str  # the prefix: openai, anthropic, a custom name...
    model_id: str  # gpt-4o, or * for every model of the provider
    spec: ProviderSpec | None  # None only for an unknown provider without provider_interface
    base_url: str | None
    access_key: Secret | None = None
    default: bool = False
    passthrough_auth: bool = False
    http_host: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: EMPTY, repr=False)
    source: Path = field(default=(), compare=False, repr=False)

    @property
    def model(self) -> str:
        return f"{self.provider}/{self.model_id}"

    @property
    def is_wildcard(self) -> bool:
        return self.model_id == "*"

    @property
    def wire(self) -> Wire | None:
        return self.spec.wire if self.spec else None


@dataclass(frozen=True, slots=True)
class RoutingPreference:
    name: str
    description: str
    models: tuple[str, ...]  # as written; resolve through Config.models
    prefer: str = "none"
    examples: tuple[str, ...] = ()
    source: Path = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    url: str
    source: Path = field(default=(), compare=False, repr=False)


class FilterType(StrEnum):
    MCP = "mcp"  # upstream's default
    HTTP = "http"
    BUILTIN = "builtin"


# A filter's defaults depend on where it runs (upstream passes an output chunk through on
# any error, so output filters fail open by default).
DEFAULT_FILTER_TIMEOUT_S = {"input": 5.0, "output": 1.0}
DEFAULT_ON_ERROR = {"input": "fail_closed", "output": "fail_open"}
# The options of each built-in kind (the keys of a filter item besides the common ones).
BUILTIN_OPTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "pii": frozenset({"action", "entities"}),
        "prompt_injection": frozenset({"threshold"}),
        "content_policy": frozenset({"rules", "message"}),
    }
)


@dataclass(frozen=True, slots=True)
class Filter:
    id: str
    url: str = ""
    type: FilterType = FilterType.MCP
    transport: str = "streamable-http"
    tool: str = ""
    kind: str = ""  # a builtin's kind (pii...); http and mcp filters: the type's name
    timeout_s: float | None = None  # None: the direction's default
    on_error: str | None = None  # fail_closed | fail_open; None: the direction's default
    mode: str = "enforce"  # enforce | observe
    options: Mapping[str, object] = field(default_factory=lambda: EMPTY)  # a builtin's
    source: Path = field(default=(), compare=False, repr=False)

    def timeout_for(self, direction: str) -> float:
        return self.timeout_s if self.timeout_s is not None else DEFAULT_FILTER_TIMEOUT_S[direction]

    def on_error_for(self, direction: str) -> str:
        return self.on_error or DEFAULT_ON_ERROR[direction]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    hosts: tuple[str, ...]
    protocol: str = "http"
    connect_timeout_s: float | None = None
    timeout_s: float | None = None
    http_host: str | None = None
    source: Path = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PromptTarget:
    name: str
    description: str
    default: bool = False
    endpoint: Mapping[str, object] = field(default_factory=lambda: EMPTY, repr=False)
    parameters: tuple[Mapping[str, object], ...] = ()
    system_prompt: str | None = None
    auto_llm_dispatch_on_response: bool = False
    source: Path = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One `ratelimits` entry (proxy/limits enforces it)."""

    model: str  # as written: a model, alias or route name; proxy/limits resolves it
    header: str  # the selector's key, lower-cased: a header name, or CLIENT_KEY_SELECTOR
    value: str | None  # None: each value of the header (or each key id) has its own bucket
    tokens: int
    unit: str  # second | minute | hour | day
    source: Path = field(default=(), compare=False, repr=False)

    @property
    def period_s(self) -> float:
        return RATE_LIMIT_UNITS[self.unit]


# `selector: {key: client_key}`: the authenticated client key's id, not a header.
CLIENT_KEY_SELECTOR = "client_key"
RATE_LIMIT_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True, slots=True)
class TraceStoreSettings:
    """tracing.store (a Plano extension): the local SQLite trace store."""

    enabled: bool = True
    path: str | None = None  # None: $PLANO_HOME/traces.db
    retention_days: float = 7.0
    max_traces: int = 100_000
    capture_messages: bool = True


@dataclass(frozen=True, slots=True)
class Tracing:
    random_sampling: float = 100.0
    trace_internal: bool = False
    otlp_endpoint: str | None = None
    header_prefixes: tuple[str, ...] = ()
    static_attributes: Mapping[str, str] = _empty()
    exporters: tuple[Mapping[str, object], ...] = field(default=(), repr=False)
    store: TraceStoreSettings = TraceStoreSettings()


@dataclass(frozen=True, slots=True)
class Admin:
    """admin (a Plano extension): where /metrics and the OTLP receiver listen."""

    enabled: bool = True
    address: str = "127.0.0.1"
    port: int | None = None  # None: 9901, or a free port when 9901 is taken


class OnUnavailable(StrEnum):
    """What a request gets when the shared store cannot answer."""

    FAIL_OPEN = "fail_open"  # served without the store, a warning line and a metric
    FAIL_CLOSED = "fail_closed"  # a 503 in the client's API shape


@dataclass(frozen=True, slots=True)
class SharedStateSettings:
    """shared_state (a Plano extension): the Redis every instance of a deployment shares."""

    url: Secret  # may carry a password: never shown
    type: str = "redis"
    timeout_s: float = 0.1  # per operation, connecting included
    on_unavailable: OnUnavailable = OnUnavailable.FAIL_OPEN


@dataclass(frozen=True, slots=True)
class SessionCache:
    type: str = "memory"  # memory | redis
    url: Secret | None = None  # may carry a Redis password; shared_state's when defaulted
    tenant_header: str | None = None


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """routing.router: which backend decides routes (see docs/routing.md)."""

    backend: str = "auto"  # auto | embedded | ollama | openai-compatible | hybrid
    model: str | None = None  # router LLM; None means the backend's default
    base_url: str | None = None
    access_key: Secret | None = None
    timeout_s: float = 3.0
    pull: bool = True
    keep_alive: str | int = -1
    escalate_below_margin: float = 0.5
    threshold: float | None = None
    model_path: str | None = None
    cache_size: int = 4096
    learned_routes: str | None = None  # `plano route --learn`'s file, opt-in


@dataclass(frozen=True, slots=True)
class Routing:
    session_ttl_seconds: int = 600
    session_max_entries: int = 10000
    route_on_user_only: bool = False
    session_cache: SessionCache = SessionCache()
    router_model: str | None = None  # overrides.llm_routing_model or legacy routing.model
    router: RouterSettings = RouterSettings()


@dataclass(frozen=True, slots=True)
class StateStorage:
    type: str = "sqlite"
    connection_string: Secret | None = None
    path: str | None = None  # sqlite file; None means $PLANO_HOME/state.db
    timeout_s: float = 2.0  # postgres: per operation, as the request sees it
    on_unavailable: str = "fail_open"  # postgres: fail_open | fail_closed


# overrides.max_upstream_response_bytes: the most of one answer the gateway will hold.
DEFAULT_MAX_UPSTREAM_RESPONSE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Overrides:
    disable_signals: bool = False
    use_agent_orchestrator: bool = False
    upstream_connect_timeout_s: float = 5.0
    upstream_tls_ca_path: str | None = None
    llm_routing_model: str | None = None
    agent_orchestration_model: str | None = None
    orchestrator_model_context_length: int = 8192
    optimize_context_window: bool = False
    prompt_target_intent_matching_threshold: float | None = None
    max_upstream_response_bytes: int = DEFAULT_MAX_UPSTREAM_RESPONSE_BYTES
    other: Mapping[str, object] = field(
        default_factory=lambda: EMPTY, repr=False
    )  # keys we do not know, kept for forward compatibility


@dataclass(frozen=True, slots=True)
class Config:
    version: str
    path: str | None
    listeners: tuple[Listener, ...]
    providers: tuple[ModelProvider, ...]
    aliases: Mapping[str, str] = _empty()
    alias_fallbacks: Mapping[str, tuple[str, ...]] = _empty()
    routes: tuple[RoutingPreference, ...] = ()
    agents: tuple[Agent, ...] = ()
    filters: tuple[Filter, ...] = ()
    endpoints: Mapping[str, Endpoint] = _empty()
    prompt_targets: tuple[PromptTarget, ...] = ()
    system_prompt: str | None = None
    ratelimits: tuple[RateLimit, ...] = ()
    tracing: Tracing = Tracing()
    admin: Admin = Admin()
    shared_state: SharedStateSettings | None = None
    # Model prefix -> price: extends and overrides proxy.pricing's table.
    pricing: Mapping[str, Price] = _empty()
    routing: Routing = Routing()
    state_storage: StateStorage = StateStorage()
    overrides: Overrides = Overrides()
    mode: str | None = None
    prompt_guards: Mapping[str, object] = _empty()
    model_metrics_sources: tuple[Mapping[str, object], ...] = ()
    prompt_caching: Mapping[str, object] = _empty()

    @property
    def default_provider(self) -> ModelProvider | None:
        return next((p for p in self.providers if p.default), None)

    @property
    def model_listener(self) -> Listener | None:
        return next((lst for lst in self.listeners if lst.type is ListenerType.MODEL), None)

    # Built once by normalization: resolves aliases, names, ids and wildcards.
    models: ModelIndex = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
