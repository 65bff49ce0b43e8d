"""What `plano up` does with every key of the config schema: the one table of it.

Each key path of `schemas/plano_config.schema.json` (JSON-pointer-like, `*` for a list
item or a map entry) has a status:
- `enforced`: `plano up` acts on it;
- `not_served`: the schema accepts it (upstream Plano's configs use it) but this gateway
  does not act on it yet. Serving such a config would silently drop what the user asked
  for (a guardrail, a rate limit), so `plano up` refuses it and `plano validate` warns;
- `inert`: it changes nothing by design (a value with one meaning, a key upstream only
  checks), and that is documented here.

Some keys are enforced for most values and not served for a few (`type: prompt`,
`provider_interface: chatgpt`): their entry carries a `reason` that picks those values.

tests/test_served.py walks the schema and fails on any key path missing from this table,
so a new key cannot slip in without a decision. When a feature is built, its entry turns
`enforced` (and the keys below a refused one need entries of their own): nothing else
refuses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from proxy.config.problems import Path


class Status(StrEnum):
    ENFORCED = "enforced"
    NOT_SERVED = "not_served"
    INERT = "inert"


@dataclass(frozen=True, slots=True)
class Entry:
    status: Status
    # enforced: what acts on it; not_served: what is missing and what serving would
    # silently skip; inert: why it changes nothing.
    note: str
    # not_served for some values only: the refusal for a value, or None when it is served.
    reason: Callable[[Any], str | None] | None = field(default=None, repr=False)
    # The refusal covers the object holding the key (a listener of a type not served).
    whole_parent: bool = False

    @property
    def covers_subtree(self) -> bool:
        """A key refused whatever its value: the keys below it go with it."""
        return self.status is Status.NOT_SERVED and self.reason is None

    def refusal(self, value: object) -> str | None:
        if self.status is not Status.NOT_SERVED or not _used(value):
            return None
        return self.note if self.reason is None else self.reason(value)


def enforced(note: str) -> Entry:
    return Entry(Status.ENFORCED, note)


def inert(note: str) -> Entry:
    return Entry(Status.INERT, note)


def not_served(
    note: str, reason: Callable[[Any], str | None] | None = None, *, whole_parent: bool = False
) -> Entry:
    return Entry(Status.NOT_SERVED, note, reason, whole_parent)


def _used(value: object) -> bool:
    """Whether a value asks for anything: empty lists and maps, null and false do not."""
    return value is not None and value is not False and value not in ("", [], {})


def _only(values: tuple[str, ...], message: str) -> Callable[[Any], str | None]:
    """Refuse these values only; `{value}` in the message names the one found."""
    return lambda value: message.format(value=value) if value in values else None


# Providers the schema accepts by name that `plano up` cannot call yet.
NOT_SERVED_PROVIDERS: dict[str, str] = {
    "chatgpt": "the ChatGPT subscription provider (chatgpt/*, which upstream Plano logs into "
    "with `planoai chatgpt login`) is not served yet",
    "amazon_bedrock": "amazon_bedrock is not served yet (its Converse API has no adapter)",
}


def _provider_model(value: object) -> str | None:
    if isinstance(value, str):
        return NOT_SERVED_PROVIDERS.get(value.partition("/")[0])
    return None


def _provider_interface(value: object) -> str | None:
    return NOT_SERVED_PROVIDERS.get(value) if isinstance(value, str) else None


_PROMPTS = "prompt targets are not served yet: prompt listeners are what call them"


def _provider_entries(base: str) -> dict[str, Entry]:
    """model_providers and its deprecated twin llm_providers share one definition."""
    return {
        base: enforced("normalize: the models requests are sent to"),
        f"{base}/*/model": not_served(
            "the providers " + " and ".join(f"`{p}`" for p in sorted(NOT_SERVED_PROVIDERS)),
            _provider_model,
        ),
        f"{base}/*/name": enforced("model_index: a name requests and aliases may use"),
        f"{base}/*/provider": enforced("normalize: the v0.1 provider prefix"),
        f"{base}/*/provider_interface": not_served(
            "`chatgpt`",
            _provider_interface,
        ),
        f"{base}/*/access_key": enforced("upstream/targets: the auth header"),
        f"{base}/*/default": enforced("gateway/resolve: the model of requests naming none"),
        f"{base}/*/base_url": enforced("upstream/targets: where requests go"),
        f"{base}/*/passthrough_auth": enforced("gateway/pipeline: forwards the client's key"),
        f"{base}/*/http_host": enforced("upstream/targets: the Host header"),
        f"{base}/*/headers": enforced("upstream/targets: extra headers"),
        f"{base}/*/headers/*": enforced("upstream/targets: one extra header"),
        f"{base}/*/routing_preferences": enforced("normalize: v0.3 routes, made top-level"),
        f"{base}/*/routing_preferences/*/name": enforced("routing: the route's name"),
        f"{base}/*/routing_preferences/*/description": enforced("routing: what the router reads"),
    }


def _legacy_listener(base: str, entry: Entry) -> dict[str, Entry]:
    if entry.status is Status.NOT_SERVED:
        return {base: entry}  # its keys go with it
    return {
        base: entry,
        f"{base}/address": enforced("server/runner: where it binds"),
        f"{base}/port": enforced("server/runner: where it binds"),
        f"{base}/timeout": enforced("gateway/pipeline: the upstream timeout"),
        f"{base}/message_format": inert("openai is its only value, and the listener speaks it"),
    }


TABLE: dict[str, Entry] = {
    "/version": enforced("normalize and rules: which dialect the file is read as"),
    "/mode": not_served(
        "`prompt` (the prompt gateway)",
        _only(("prompt",), "mode: prompt (the prompt gateway) is not served yet"),
    ),
    # --- listeners ---
    "/listeners": enforced("server/runner: one site per listener"),
    "/listeners/*/name": enforced("the start-up panel, access log and traces name it"),
    "/listeners/*/type": not_served(
        "`prompt` listeners",
        _only(
            ("prompt",),
            "{value} listeners are not served yet: this one's port would not open, and "
            "nothing it lists would run",
        ),
        whole_parent=True,
    ),
    "/listeners/*/port": enforced("server/runner: where it binds"),
    "/listeners/*/address": enforced("server/runner: where it binds"),
    "/listeners/*/timeout": enforced(
        "gateway/pipeline: the upstream timeout; agents/chain: each agent call's"
    ),
    "/listeners/*/max_retries": enforced(
        "gateway/pipeline: retries per model; agents/call: connect retries per agent call"
    ),
    "/listeners/*/router": inert(
        "upstream Plano only checks its value: plano_orchestrator_v1 is the one agent router"
    ),
    "/listeners/*/message_format": inert("openai is its only value, and listeners speak it"),
    "/listeners/*/agents": enforced(
        "agents/orchestrator: the agents an agent listener picks from (rules: only there)"
    ),
    "/listeners/*/agents/*/id": enforced("agents/chain: which top-level agent is called"),
    "/listeners/*/agents/*/description": enforced("agents/orchestrator: what the router reads"),
    "/listeners/*/agents/*/default": enforced(
        "agents/orchestrator: serves when none fits or the orchestrator fails"
    ),
    "/listeners/*/agents/*/input_filters": enforced(
        "filters/chain: run on the body sent to this agent"
    ),
    "/listeners/*/input_filters": enforced("filters/chain: run on each request before parsing"),
    "/listeners/*/auth": enforced("auth/edge: a client key on every path but /healthz"),
    "/listeners/*/auth/keys": enforced("auth/keys: the accepted keys, as SHA-256 digests"),
    "/listeners/*/auth/keys/*/id": enforced("the trace attribute plano.client_key_id"),
    "/listeners/*/auth/keys/*/key": enforced("auth/keys: compared by hash, never stored"),
    "/listeners/*/output_filters": enforced(
        "filters/chain: run on each chunk of the answer before the client gets it"
    ),
    **_legacy_listener(
        "/listeners/ingress_traffic",
        not_served("the prompt gateway (ingress_traffic) is not served yet"),
    ),
    **_legacy_listener(
        "/listeners/egress_traffic", enforced("normalize: the model listener, legacy form")
    ),
    # --- models and routes ---
    **_provider_entries("/model_providers"),
    **_provider_entries("/llm_providers"),
    "/model_aliases": enforced("model_index: names clients may send"),
    "/model_aliases/*": enforced("model_index: one alias"),
    "/model_aliases/*/target": enforced("model_index: what the alias resolves to"),
    "/model_aliases/*/fallbacks": enforced("gateway/resolve: the failover chain"),
    "/routing_preferences": enforced("routing: the routes"),
    "/routing_preferences/*/name": enforced("routing: the route's name"),
    "/routing_preferences/*/description": enforced("routing: what the router reads"),
    "/routing_preferences/*/models": enforced("gateway/pipeline: the route's models, in order"),
    "/routing_preferences/*/selection_policy": enforced("routing/selection"),
    "/routing_preferences/*/selection_policy/prefer": enforced(
        "routing/selection: cheapest (price table), fastest (measured latency)"
    ),
    "/routing_preferences/*/examples": enforced("routing/embedded: sharpens the route"),
    "/agents": enforced("agents/call: where each agent is called"),
    "/agents/*/id": enforced("agents/chain: the id listeners name"),
    "/agents/*/url": enforced("agents/call: the agent's host, port and path prefix"),
    # --- filters ---
    "/filters": enforced("filters/chain: the filters listeners and agents name"),
    "/filters/*/id": enforced("filters/chain: the id input_filters and output_filters name"),
    "/filters/*/type": enforced("filters/chain: which transport or built-in runs it"),
    "/filters/*/url": enforced("filters/http_transport, mcp_transport: where it is called"),
    "/filters/*/transport": inert("streamable-http is its only value, and MCP filters use it"),
    "/filters/*/tool": enforced("filters/mcp_transport: the tool called"),
    "/filters/*/timeout": enforced("filters/chain: the bound of one call"),
    "/filters/*/on_error": enforced("filters/chain: what a failed call does"),
    "/filters/*/mode": enforced("filters/chain: observe records, enforce applies"),
    "/filters/*/kind": enforced("filters/builtin: which guardrail runs"),
    "/filters/*/action": enforced("filters/builtin/pii: redact, anonymize or block"),
    "/filters/*/entities": enforced("filters/builtin/pii: the kinds of values found"),
    "/filters/*/threshold": enforced("filters/builtin/injection: the score that blocks"),
    "/filters/*/rules": enforced("filters/builtin/content_policy: what blocks"),
    "/filters/*/rules/*/keywords": enforced("filters/builtin/content_policy: words that block"),
    "/filters/*/rules/*/pattern": enforced("filters/builtin/content_policy: a regex that blocks"),
    "/filters/*/message": enforced("filters/builtin/content_policy: the block's text"),
    # --- prompt targets: not served yet ---
    "/endpoints": not_served(f"endpoints serve prompt targets; {_PROMPTS}"),
    "/prompt_targets": not_served(_PROMPTS),
    "/system_prompt": not_served(
        f"the top-level system_prompt is for prompt targets; {_PROMPTS}, and it is not "
        "added to model requests"
    ),
    "/prompt_guards": not_served(
        "prompt guards (jailbreak detection) are not served: prompts would reach the "
        "model unchecked"
    ),
    "/ratelimits": enforced("limits/enforce: budgets taken before dispatch, 429 over them"),
    "/ratelimits/*/model": enforced("limits/match: resolved like a request's model, or a route"),
    "/ratelimits/*/selector": enforced("limits/match: which requests and buckets"),
    "/ratelimits/*/selector/key": enforced("limits/match: a header, or client_key"),
    "/ratelimits/*/selector/value": enforced("limits/match: one value; omitted: one each"),
    "/ratelimits/*/limit": enforced("limits/enforce: the GCRA bucket"),
    "/ratelimits/*/limit/tokens": enforced("limits/enforce: tokens per unit, burst included"),
    "/ratelimits/*/limit/unit": enforced("limits/enforce: the refill period"),
    # --- tracing ---
    "/tracing": enforced("telemetry"),
    "/tracing/random_sampling": enforced("telemetry/tracecontext: the sampler"),
    "/tracing/trace_arch_internal": not_served(
        "tracing Plano's internal calls (trace_arch_internal) is not served yet"
    ),
    "/tracing/opentracing_grpc_endpoint": enforced("telemetry/otlp_export"),
    "/tracing/span_attributes": enforced("telemetry/hub"),
    "/tracing/span_attributes/header_prefixes": enforced("telemetry/hub"),
    "/tracing/span_attributes/static": enforced("telemetry/hub"),
    "/tracing/span_attributes/static/*": enforced("telemetry/hub"),
    "/tracing/exporters": not_served(
        "span exporters (PostHog) are not served yet: spans go only to the OTLP endpoint "
        "and the local trace store"
    ),
    "/tracing/store": enforced("telemetry/store"),
    "/tracing/store/enabled": enforced("telemetry/store"),
    "/tracing/store/path": enforced("telemetry/store"),
    "/tracing/store/retention_days": enforced("telemetry/store: pruning"),
    "/tracing/store/max_traces": enforced("telemetry/store: pruning"),
    "/tracing/store/capture_messages": enforced("telemetry/hub: bodies ride along"),
    # --- Plano extensions ---
    "/admin": enforced("telemetry/admin_app"),
    "/admin/address": enforced("telemetry/worker: where it binds"),
    "/admin/port": enforced("telemetry/worker: where it binds"),
    "/admin/enabled": enforced("telemetry/worker"),
    "/pricing": enforced("pricing: cost and prefer: cheapest"),
    "/pricing/*": enforced("pricing: one model prefix"),
    "/pricing/*/input": enforced("pricing"),
    "/pricing/*/output": enforced("pricing"),
    "/pricing/*/cached_input": enforced("pricing"),
    # --- shared state ---
    "/shared_state": enforced("state/shared: opened by plano up, one pool per process"),
    "/shared_state/type": inert("redis is its only value, and the store speaks it"),
    "/shared_state/url": enforced("state/shared: where the store is"),
    "/shared_state/timeout": enforced("state/shared: the bound of each operation"),
    "/shared_state/on_unavailable": enforced("state/shared: fail open or answer 503"),
    # --- routing ---
    "/routing": enforced("routing/setup"),
    "/routing/llm_provider": enforced("normalize: the router model when routing.model is unset"),
    "/routing/model": enforced("routing/setup: the router model"),
    "/routing/session_ttl_seconds": enforced("routing/affinity"),
    "/routing/session_max_entries": enforced("routing/affinity"),
    "/routing/route_on_user_only": enforced("routing/conversation"),
    "/routing/session_cache": enforced("routing/pins: where affinity pins live"),
    "/routing/session_cache/type": enforced("routing/pins: memory, or redis (state/shared)"),
    "/routing/session_cache/url": enforced("state/shared: the Redis the pins live in"),
    "/routing/session_cache/tenant_header": enforced("routing/pins: the key's tenant scope"),
    "/routing/routing_budget": not_served("routing budgets are not served yet"),
    "/routing/router": enforced("routing/setup: the router backend"),
    "/routing/router/backend": enforced("routing/setup"),
    "/routing/router/model": enforced("routing/setup"),
    "/routing/router/base_url": enforced("routing/setup"),
    "/routing/router/access_key": enforced("routing/setup"),
    "/routing/router/timeout": enforced("routing/backends"),
    "/routing/router/pull": enforced("routing/backends/ollama_router"),
    "/routing/router/keep_alive": enforced("routing/backends/ollama_router"),
    "/routing/router/escalate_below_margin": enforced("routing/backends/hybrid"),
    "/routing/router/threshold": enforced("routing/backends/embedded"),
    "/routing/router/model_path": enforced("routing/backends/embedded"),
    "/routing/router/learned_routes": enforced("routing/setup (routing/learned)"),
    "/routing/router/cache_size": enforced("routing/service"),
    # --- state ---
    "/state_storage": enforced("state/conversations"),
    "/state_storage/type": enforced("state/conversations: sqlite, memory or postgres"),
    "/state_storage/connection_string": enforced("state/postgres: the database"),
    "/state_storage/timeout": enforced("state/postgres: per operation, and statements"),
    "/state_storage/on_unavailable": enforced("state/postgres: 503 before dispatch or not"),
    "/state_storage/path": enforced("state/conversations: the SQLite file"),
    # --- overrides ---
    "/overrides": enforced("normalize"),
    "/overrides/prompt_target_intent_matching_threshold": not_served(
        f"a prompt-target threshold; {_PROMPTS}"
    ),
    "/overrides/optimize_context_window": not_served(
        "trimming conversations to the model's context window is not served yet"
    ),
    "/overrides/use_agent_orchestrator": not_served(
        "upstream's switch for the prompt gateway's agent orchestrator; prompt listeners "
        "are not served yet (agent listeners need no switch)"
    ),
    "/overrides/disable_signals": enforced("telemetry/settings: signals off"),
    "/overrides/upstream_connect_timeout": enforced("gateway/pipeline: the connect timeout"),
    "/overrides/upstream_tls_ca_path": not_served(
        "a CA bundle for upstream TLS is not served yet: upstreams would be verified "
        "against the system's CAs only"
    ),
    "/overrides/llm_routing_model": enforced("routing/setup: the router model"),
    "/overrides/agent_orchestration_model": enforced("routing/setup: the orchestrator LLM"),
    "/overrides/orchestrator_model_context_length": enforced(
        "routing/setup: the orchestrator-v1 prompt's conversation budget"
    ),
    "/overrides/upstream_timeout_ms": enforced("normalize: the default listener timeout"),
    "/overrides/max_upstream_response_bytes": enforced(
        "gateway/answer, wire/sse: the most of an answer the gateway holds"
    ),
    "/overrides/*": not_served("not an override Plano knows: it would do nothing"),
    "/prompt_caching": not_served("provider prompt-caching settings are not served yet"),
    "/model_metrics_sources": not_served(
        "external cost and latency catalogs are not served yet: prefer: cheapest uses "
        "Plano's price table and `pricing`, fastest the latencies it measures"
    ),
}


@dataclass(frozen=True, slots=True)
class Refusal:
    path: Path
    message: str
    at_key: bool  # point at the key (refused whatever its value) or at the value
    whole_parent: bool


def refusals(data: dict) -> list[Refusal]:
    """Every use of a key `plano up` does not serve, outermost only."""
    found: list[Refusal] = []
    _walk(data, (), [_trie()], found)
    # A listener refused for its type is reported once, not again for its agents.
    parents = [r.path[:-1] for r in found if r.whole_parent]
    return [r for r in found if r.whole_parent or not any(r.path[: len(p)] == p for p in parents)]


def _walk(value: object, path: Path, nodes: list[_Node], found: list[Refusal]) -> None:
    if isinstance(value, dict):
        items: Iterator[tuple[Any, Any]] = iter(value.items())
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        # A key named in the table wins over a `*` beside it (overrides.disable_signals
        # over overrides.*).
        matched = [n.children[key] for n in nodes if isinstance(key, str) and key in n.children]
        matched += [n.children["*"] for n in nodes if "*" in n.children]
        if not matched:
            continue  # a key the schema rejects: reported there
        child_path = (*path, key)
        entry = next((m.entry for m in matched if m.entry is not None), None)
        why = entry.refusal(child) if entry is not None else None
        if why is not None:
            found.append(Refusal(child_path, why, entry.reason is None, entry.whole_parent))
            if entry.covers_subtree:
                continue
        _walk(child, child_path, matched, found)


class _Node:
    __slots__ = ("children", "entry")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entry: Entry | None = None


_ROOT: _Node | None = None


def _trie() -> _Node:
    global _ROOT
    if _ROOT is None:
        root = _Node()
        for pointer, entry in TABLE.items():
            node = root
            for part in split(pointer):
                node = node.children.setdefault(part, _Node())
            node.entry = entry
        _ROOT = root
    return _ROOT


def split(pointer: str) -> tuple[str, ...]:
    return tuple(pointer.strip("/").split("/"))


def lookup(pointer: str) -> Entry | None:
    """The entry of a schema key path: its own, or a refused ancestor's that covers it."""
    if pointer in TABLE:
        return TABLE[pointer]
    parts = split(pointer)
    for end in range(len(parts) - 1, 0, -1):
        ancestor = TABLE.get("/" + "/".join(parts[:end]))
        if ancestor is not None and ancestor.covers_subtree:
            return ancestor
    return None
