"""Semantic rules: what the schema cannot say about a config.

Each rule reads the normalized Config (whose entities remember their YAML paths) and
reports through the Reporter, so every message lands on the right line and column.
The rules follow upstream Plano's config generator, so a config rejected there is
rejected here, with a clearer message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from proxy.auth.keys import MIN_KEY_CHARS, is_hashed
from proxy.config.filter_rules import filters
from proxy.config.hints import did_you_mean
from proxy.config.model import CLIENT_KEY_SELECTOR, Config, ListenerType, ModelProvider
from proxy.config.normalize import model_name
from proxy.config.problems import Path, format_path
from proxy.config.redact import redact_url
from proxy.config.report import Reporter
from proxy.config.served import refusals
from proxy.config.versions import version_tuple
from proxy.providers.catalog import PROVIDERS
from proxy.upstream.targets import PASSTHROUGH_AUTH_HEADERS


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules read: the typed config, the raw data, and which values were $VARs."""

    config: Config
    data: dict
    env_paths: frozenset[Path] = frozenset()
    serving: bool = False  # `plano up` rather than `plano validate`
    schema_paths: frozenset[Path] = frozenset()  # where the schema found problems

    def schema_said(self, path: Path) -> bool:
        """Whether the schema reported a problem at or below `path` (no need to again)."""
        return any(p[: len(path)] == path for p in self.schema_paths)

    def raw(self, path: Path) -> dict:
        """The raw mapping at `path`, or {} when there is none."""
        node: object = self.data
        for part in path:
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return {}
        return node if isinstance(node, dict) else {}


Rule = Callable[[Facts, Reporter], None]


def check_rules(facts: Facts, report: Reporter) -> None:
    for rule in RULES:
        rule(facts, report)


# --- model providers ----------------------------------------------------------------


def provider_model_names(facts: Facts, report: Reporter) -> None:
    for p in facts.config.providers:
        where = (*p.source, "model")
        if not p.provider:
            report.error(
                "provider-model-format",
                f"model '{p.model_id}' must name its provider: provider/model_id",
                where,
                f"for example `model: openai/{p.model_id}`, or `model: openai/*` for every model.",
            )
        elif not p.model_id:
            report.error(
                "provider-model-format",
                f"model '{p.provider}/' has no model id after the slash",
                where,
                f"for example `model: {p.provider}/<model_id>`, or `{p.provider}/*`.",
            )
        elif "*" in p.model_id and p.model_id != "*":
            report.error(
                "provider-model-format",
                f"model '{p.model}': a wildcard must be the whole model id (provider/*)",
                where,
                f"write `model: {p.provider}/*`.",
            )


def provider_interfaces(facts: Facts, report: Reporter) -> None:
    for p in facts.config.providers:
        raw = facts.raw(p.source)
        interface = raw.get("provider_interface")
        if interface is None:
            continue
        if raw.get("provider"):
            report.error(
                "provider-and-interface",
                "'provider' and 'provider_interface' are both set",
                (*p.source, "provider_interface"),
                f"write `model: {model_name(raw)}` and drop both.",
                at_key=True,
            )
        elif p.provider in PROVIDERS:
            report.error(
                "interface-on-known-provider",
                f"provider_interface is only for providers Plano does not know; "
                f"'{p.provider}' is known",
                (*p.source, "provider_interface"),
                "remove provider_interface: the provider prefix of the model sets the protocol.",
                at_key=True,
            )


def provider_base_urls(facts: Facts, report: Reporter) -> None:
    for p in facts.config.providers:
        if not p.provider:
            continue
        raw = facts.raw(p.source)
        known = PROVIDERS.get(p.provider)
        if known is None:
            missing = [k for k in ("base_url", "provider_interface") if not raw.get(k)]
            if missing:
                report.error(
                    "unknown-provider",
                    f"provider '{p.provider}' is not one Plano knows, so it needs "
                    + " and ".join(missing),
                    (*p.source, "model"),
                    "for any OpenAI-compatible server: `provider_interface: openai` and "
                    "`base_url: http://host:port/v1`. Known providers: "
                    + ", ".join(sorted(PROVIDERS))
                    + ".",
                )
        elif known.needs_base_url and not raw.get("base_url"):
            report.error(
                "missing-base-url",
                f"provider '{p.provider}' needs base_url",
                (*p.source, "model"),
                _BASE_URL_EXAMPLES.get(p.provider, "set base_url to the provider's endpoint."),
            )
        base_url = raw.get("base_url")
        if isinstance(base_url, str) and not _is_http_url(base_url):
            report.error(
                "invalid-url",
                f"base_url '{redact_url(base_url)}' is not an http(s) URL",
                (*p.source, "base_url"),
                "write it with scheme and host, for example https://api.example.com/v1.",
            )


_BASE_URL_EXAMPLES = {
    "azure_openai": "for example `base_url: https://<resource>.openai.azure.com`.",
    "ollama": "for example `base_url: http://localhost:11434`.",
    "qwen": "for example `base_url: https://dashscope-intl.aliyuncs.com/compatible-mode/v1`.",
    "amazon_bedrock": "for example `base_url: https://bedrock-runtime.us-east-1.amazonaws.com`.",
    "plano": "the server of the router model, for example `base_url: http://localhost:11434`.",
    "arch": "the server of the router model, for example `base_url: http://localhost:11434`.",
}


def provider_defaults(facts: Facts, report: Reporter) -> None:
    first_default: ModelProvider | None = None
    for p in facts.config.providers:
        if not p.default:
            continue
        if p.is_wildcard:
            report.error(
                "wildcard-default",
                f"a wildcard model ({p.model}) cannot be the default",
                (*p.source, "default"),
                f"mark one specific model as default, e.g. `model: {p.provider}/<model_id>`.",
                at_key=True,
            )
        if first_default is None:
            first_default = p
            continue
        line = report.source_map.value_at(first_default.source).line
        report.error(
            "multiple-defaults",
            f"more than one default model: '{p.name}' and '{first_default.name}' (line {line})",
            (*p.source, "default"),
            "keep `default: true` on one provider only.",
            at_key=True,
        )


def wildcard_routes(facts: Facts, report: Reporter) -> None:
    for p in facts.config.providers:
        if p.is_wildcard and facts.raw(p.source).get("routing_preferences"):
            report.error(
                "wildcard-route",
                f"a wildcard model ({p.model}) cannot have routing_preferences",
                (*p.source, "routing_preferences"),
                "a route needs a specific model: list one under the top-level routing_preferences.",
                at_key=True,
            )
    for route in facts.config.routes:
        if route.source[:1] != ("routing_preferences",):
            continue  # inline routes on a wildcard are reported above
        for i, model in enumerate(route.models):
            if model.endswith("/*"):
                report.error(
                    "wildcard-route",
                    f"route '{route.name}' lists a wildcard ({model})",
                    (*route.source, "models", i),
                    "list specific models, for example openai/gpt-4o.",
                )


def provider_keys(facts: Facts, report: Reporter) -> None:
    for p in facts.config.providers:
        if p.passthrough_auth or p.spec is None or not p.spec.needs_key:
            continue
        raw = facts.raw(p.source)
        raw_key = raw.get("access_key")
        if raw_key is None and not raw.get("base_url"):
            report.warning(
                "missing-access-key",
                f"{p.name} has no access_key; requests to it will be sent without credentials",
                (*p.source, "model"),
                "add `access_key: $YOUR_API_KEY`, or `passthrough_auth: true` to forward "
                "the client's key.",
            )
        elif isinstance(raw_key, str) and (*p.source, "access_key") not in facts.env_paths:
            report.warning(
                "literal-secret",
                f"access_key of {p.name} is written in the file",
                (*p.source, "access_key"),
                "keep keys out of config files: `access_key: $ENV_VAR` reads it from the "
                "environment or a .env file beside the config.",
            )


# --- uniqueness ---------------------------------------------------------------------


def duplicates(facts: Facts, report: Reporter) -> None:
    config = facts.config
    named = [p for p in config.providers if facts.raw(p.source).get("name")]
    _unique(
        report,
        "duplicate-name",
        "model provider name",
        ((p.name, (*p.source, "name")) for p in named),
    )
    concrete = [p for p in config.providers if p.provider and p.model_id and not p.is_wildcard]
    _unique(report, "duplicate-model", "model", ((p.model, (*p.source, "model")) for p in concrete))
    # Upstream resolves bare ids too, so `openai/a` and `groq/a` would be ambiguous.
    _unique(
        report,
        "duplicate-model",
        "model id",
        ((p.model_id, (*p.source, "model")) for p in _distinct_models(concrete)),
    )
    explicit = [lst for lst in config.listeners if not lst.implicit]
    _unique(
        report, "duplicate-listener", "listener name", ((lst.name, lst.source) for lst in explicit)
    )
    # Agents and filters share one id space: both become upstream clusters by id.
    _unique(
        report,
        "duplicate-id",
        "agent or filter id",
        ((item.id, (*item.source, "id")) for item in (*config.agents, *config.filters)),
    )
    _unique(report, "duplicate-route", "routing preference", _route_names(facts))
    _unique(
        report,
        "duplicate-name",
        "prompt target",
        ((t.name, (*t.source, "name")) for t in config.prompt_targets),
    )
    _ports(facts, report, explicit)


def _distinct_models(providers: list[ModelProvider]) -> Iterator[ModelProvider]:
    seen: set[str] = set()
    for p in providers:  # a repeated provider/id is reported once, above
        if p.model not in seen:
            seen.add(p.model)
            yield p


def _route_names(facts: Facts) -> Iterator[tuple[str, Path]]:
    """Every route name as written: top level, then inline under providers."""
    for key in ("routing_preferences",):
        for i, item in enumerate(facts.data.get(key) or []):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                yield item["name"], (key, i, "name")
    for p in facts.config.providers:
        inline = facts.raw(p.source).get("routing_preferences")
        for i, item in enumerate(inline if isinstance(inline, list) else []):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                yield item["name"], (*p.source, "routing_preferences", i, "name")


_ANY_ADDRESS = {"0.0.0.0", "::", "[::]"}


def _ports(facts: Facts, report: Reporter, listeners) -> None:
    for i, lst in enumerate(listeners):
        for other in listeners[:i]:
            same_address = lst.address == other.address or bool(
                {lst.address, other.address} & _ANY_ADDRESS
            )
            if lst.port == other.port and same_address:
                where = (*lst.source, "port") if facts.raw(lst.source).get("port") else lst.source
                report.error(
                    "duplicate-port",
                    f"listener '{lst.name}' uses port {lst.port}, already taken by '{other.name}'",
                    where,
                    "give each listener its own port.",
                )
                break


def _unique(report: Reporter, code: str, what: str, items: Iterable[tuple[str, Path]]) -> None:
    first: dict[str, Path] = {}
    for value, path in items:
        if value in first:
            line = report.source_map.value_at(first[value]).line
            report.error(
                code,
                f"duplicate {what} '{value}' (first at line {line})",
                path,
                f"each {what} must be unique.",
            )
        else:
            first[value] = path


# --- listeners ----------------------------------------------------------------------


def model_listeners(facts: Facts, report: Reporter) -> None:
    config = facts.config
    model_listeners = [lst for lst in config.listeners if lst.type is ListenerType.MODEL]
    for extra in model_listeners[1:]:
        report.error(
            "multiple-model-listeners",
            f"only one model listener is allowed; '{extra.name}' is a second one "
            f"(the first is '{model_listeners[0].name}')",
            (*extra.source, "type"),
            "serve every model from one listener; aliases and routing pick the model.",
        )
    for lst in config.listeners:
        if lst.implicit:
            continue
        if lst.type is ListenerType.MODEL and not config.providers:
            report.error(
                "no-providers",
                f"model listener '{lst.name}' has no model_providers to send requests to",
                lst.source,
                "add a model_providers list with at least one model.",
            )
        if lst.type is not ListenerType.AGENT and lst.agents:
            # Upstream reads agents only on agent listeners; here they would do nothing.
            (report.error if facts.serving else report.warning)(
                "agents-on-non-agent-listener",
                f"{lst.type.value} listener '{lst.name}' lists agents, which only agent "
                "listeners run",
                (*lst.source, "agents"),
                "move them to a listener of `type: agent`.",
                at_key=True,
            )
        if lst.type is ListenerType.AGENT and not lst.agents:
            report.error(
                "no-agents",
                f"agent listener '{lst.name}' lists no agents",
                lst.source,
                "add `agents: [{id: ..., description: ...}]`.",
            )


# --- references ---------------------------------------------------------------------


def references(facts: Facts, report: Reporter) -> None:
    config = facts.config
    index = config.models
    for alias, target in config.aliases.items():
        if index.resolve(target, follow_aliases=False) is None:
            _unknown_model(
                report,
                index,
                target,
                ("model_aliases", alias, "target"),
                f"alias '{alias}' targets model '{target}', which is not configured",
            )
    for alias, fallbacks in config.alias_fallbacks.items():
        for i, model in enumerate(fallbacks):
            if index.resolve(model, follow_aliases=False) is None:
                _unknown_model(
                    report,
                    index,
                    model,
                    ("model_aliases", alias, "fallbacks", i),
                    f"alias '{alias}' falls back to model '{model}', which is not configured",
                )
    for route in config.routes:
        if route.source[:1] != ("routing_preferences",):
            continue
        for i, model in enumerate(route.models):
            if not model.endswith("/*") and index.resolve(model) is None:
                _unknown_model(
                    report,
                    index,
                    model,
                    (*route.source, "models", i),
                    f"route '{route.name}' lists model '{model}', which is not in model_providers",
                )
    route_names = {route.name for route in config.routes}
    for limit in config.ratelimits:
        # A route's name stands for its models (proxy/limits/match.py resolves both).
        if index.resolve(limit.model) is None and limit.model not in route_names:
            _unknown_model(
                report,
                index,
                limit.model,
                (*limit.source, "model"),
                f"rate limit names model '{limit.model}', which is not in model_providers, "
                "model_aliases or routing_preferences",
            )

    filter_ids = {f.id for f in config.filters}
    agent_ids = {a.id for a in config.agents}
    for lst in config.listeners:
        for key in ("input_filters", "output_filters"):
            for i, fid in enumerate(getattr(lst, key)):
                _known_id(report, "filter", fid, filter_ids, (*lst.source, key, i))
        for agent in lst.agents:
            # Upstream accepts a dangling agent id (it fails only when routed to), so
            # validate warns; serving it would fail requests, so `up` refuses.
            _known_id(
                report,
                "agent",
                agent.id,
                agent_ids,
                (*agent.source, "id"),
                warn_only=not facts.serving,
            )
            for i, fid in enumerate(agent.input_filters):
                _known_id(report, "filter", fid, filter_ids, (*agent.source, "input_filters", i))

    for target in config.prompt_targets:
        name = target.endpoint.get("name")
        if isinstance(name, str) and name not in config.endpoints:
            close = did_you_mean(name, config.endpoints)
            report.error(
                "unknown-endpoint",
                f"prompt target '{target.name}' calls endpoint '{name}', "
                "which is not defined under endpoints",
                (*target.source, "endpoint", "name"),
                f"did you mean '{close}'?"
                if close
                else f"add `endpoints: {{{name}: {{endpoint: host:port}}}}`.",
            )


def _unknown_model(report, index, ref: str, path: Path, message: str) -> None:
    close = did_you_mean(ref, index.names())
    hint = (
        f"did you mean '{close}'?"
        if close
        else "name a model from model_providers: its provider/model_id, name, or model id."
    )
    report.error("unknown-model", message, path, hint)


def _known_id(
    report, kind: str, ref: str, known: set[str], path: Path, *, warn_only: bool = False
) -> None:
    if ref in known:
        return
    close = did_you_mean(ref, known)
    (report.warning if warn_only else report.error)(
        f"unknown-{kind}",
        f"{kind} '{ref}' is not defined in the top-level {kind}s list",
        path,
        f"did you mean '{close}'?"
        if close
        else f"add `{kind}s: [{{id: {ref}, url: http://host:port}}]`.",
    )


# --- versions, URLs -----------------------------------------------------------------


def version_features(facts: Facts, report: Reporter) -> None:
    config, data = facts.config, facts.data
    if "routing_preferences" in data and version_tuple(config.version) < (0, 4):
        report.error(
            "version-feature",
            f"top-level routing_preferences need version v0.4.0 (this file says {config.version})",
            ("routing_preferences",),
            "set `version: v0.4.0`.",
            at_key=True,
        )
    if "llm_providers" in data and "model_providers" in data:
        report.error(
            "both-provider-lists",
            "both 'llm_providers' and 'model_providers' are set",
            ("llm_providers",),
            "'llm_providers' is the old name: move its entries into 'model_providers'.",
            at_key=True,
        )


def urls(facts: Facts, report: Reporter) -> None:
    config = facts.config
    for item in (*config.agents, *config.filters):
        if item.url and not _is_http_url(item.url):
            report.error(
                "invalid-url",
                f"url '{redact_url(item.url)}' is not an http(s) URL",
                (*item.source, "url"),
                "write it as http://host:port.",
            )
    endpoint = config.tracing.otlp_endpoint
    if endpoint and "$" not in endpoint:
        _check_otlp(endpoint, report)


REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_urls(facts: Facts, report: Reporter) -> None:
    """shared_state and a Redis session cache need a URL redis-py can open."""
    config = facts.config
    found: list[tuple[str, Path]] = []
    if config.shared_state is not None:
        found.append((config.shared_state.url.reveal(), ("shared_state", "url")))
    cache = config.routing.session_cache
    if (
        cache.type == "redis"
        and cache.url is not None
        and "session_cache" in facts.raw(("routing",))
    ):
        found.append((cache.url.reveal(), ("routing", "session_cache", "url")))
    if cache.type == "memory" and cache.url is not None:
        report.warning(
            "session-cache-url",
            "session_cache url is not used: type is memory",
            ("routing", "session_cache", "url"),
            "write type: redis to keep affinity pins in that Redis, or remove the url.",
        )
    for url, path in found:
        if "$" in url:
            continue  # an unset variable is reported on its own
        parts = _split(url)
        if parts is None or parts.scheme not in REDIS_SCHEMES:
            report.error(
                "redis-url",
                f"'{redact_url(url)}' is not a Redis URL",
                path,
                "write it as redis://host:6379/0 (rediss:// for TLS, unix:///path/redis.sock "
                "for a socket).",
            )
        elif parts.scheme != "unix" and not _has_host_and_port(url):
            report.error(
                "redis-url",
                f"Redis URL '{redact_url(url)}' has no host or a port that is not a number",
                path,
                "write it as redis://host:6379/0.",
            )


def _has_host_and_port(url: str) -> bool:
    parts = _split(url)
    if parts is None or not parts.hostname:
        return False
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return False
    return True


def _check_otlp(endpoint: str, report: Reporter) -> None:
    path = ("tracing", "opentracing_grpc_endpoint")
    shown = redact_url(endpoint)
    parts = _split(endpoint)
    if parts is None or parts.scheme not in ("http", "https", "grpc") or not parts.hostname:
        report.error(
            "otlp-endpoint",
            f"OTLP endpoint '{shown}' must be a URL with scheme and host",
            path,
            "for example http://localhost:4317 (gRPC) or http://localhost:4318 (HTTP).",
        )
        return
    if parts.path not in ("", "/"):
        report.error(
            "otlp-endpoint",
            f"OTLP endpoint '{shown}' must not have a path",
            path,
            "give the collector's address only, for example http://localhost:4317.",
        )
    try:
        port = parts.port
    except ValueError:
        report.error(
            "otlp-endpoint",
            f"OTLP endpoint '{shown}' has an invalid port",
            path,
            "the port is a number from 1 to 65535.",
        )
        return
    if port is None:
        report.warning(
            "otlp-endpoint",
            f"OTLP endpoint '{shown}' has no port",
            path,
            "collectors listen on 4317 (gRPC) or 4318 (HTTP).",
        )


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _is_http_url(value: str) -> bool:
    if "$" in value:  # an unset variable is reported on its own
        return True
    parts = _split(value)
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)


def admin_port(facts: Facts, report: Reporter) -> None:
    """The admin listener must not take a model listener's port."""
    admin = facts.config.admin
    if not admin.enabled or not admin.port:
        return
    for lst in facts.config.listeners:
        same_address = lst.address == admin.address or bool(
            {lst.address, admin.address} & _ANY_ADDRESS
        )
        if lst.port == admin.port and same_address:
            report.error(
                "duplicate-port",
                f"admin port {admin.port} is already listener '{lst.name}'s port",
                ("admin", "port"),
                "give the admin listener its own port (the default is 9901).",
            )
            return


# --- what is not served yet -------------------------------------------------------


def not_served(facts: Facts, report: Reporter) -> None:
    """Keys the gateway would silently skip (proxy.config.served): up refuses, validate warns."""
    for refusal in refusals(facts.data):
        message = f"{format_path(refusal.path)}: {refusal.message}"
        if facts.serving:
            hint = (
                "Plano refuses to start rather than skip it silently; remove it to serve the rest."
            )
            report.error("not-served", message, refusal.path, hint, at_key=refusal.at_key)
        else:
            hint = "`plano up` refuses this config until it is served; remove it to serve the rest."
            report.warning("not-served", message, refusal.path, hint, at_key=refusal.at_key)


# --- client keys --------------------------------------------------------------------


def client_keys(facts: Facts, report: Reporter) -> None:
    """A key comes from the environment or as its hash, never written in the file; ids and
    keys are unique per listener (an id is what traces and rate limits know a caller by)."""
    for listener in facts.config.listeners:
        if listener.auth is None:
            continue
        ids: dict[str, Path] = {}
        digests: dict[bytes, str] = {}
        for key in listener.auth.keys:
            value = facts.raw(key.source).get("key")
            where = (*key.source, "key")
            if isinstance(value, str) and not is_hashed(value):
                if where not in facts.env_paths:
                    report.error(
                        "literal-client-key",
                        f"the client key of {key.id!r} is written in the file",
                        where,
                        "keep keys out of config files: `key: $ENV_VAR` reads it from the "
                        "environment, or write its hash, `key: sha256:<hex>` (`plano keys "
                        "hash` reads the key on its input and prints it).",
                    )
                    continue
                if "$" not in value and len(value) < MIN_KEY_CHARS:
                    report.error(
                        "short-client-key",
                        f"the client key of {key.id!r} has {len(value)} characters; "
                        f"use at least {MIN_KEY_CHARS}",
                        where,
                        "`plano keys new` makes a random key.",
                    )
            if key.id in ids:
                report.error(
                    "duplicate-client-key-id",
                    f"client key id {key.id!r} is used twice in listener {listener.name!r}",
                    (*key.source, "id"),
                    "give each key its own id.",
                )
            ids.setdefault(key.id, key.source)
            if key.digest in digests:
                report.error(
                    "duplicate-client-key",
                    f"client keys {digests[key.digest]!r} and {key.id!r} are the same key",
                    where,
                    "a key identifies one caller: give each id its own key.",
                )
            digests.setdefault(key.digest, key.id)


def client_key_budgets(facts: Facts, report: Reporter) -> None:
    """A budget per client key on a gateway whose model listeners take none limits
    nothing: said at its selector, not silently ignored."""
    config = facts.config
    if any(lst.auth is not None and lst.type is ListenerType.MODEL for lst in config.listeners):
        return
    for limit in config.ratelimits:
        if limit.header == CLIENT_KEY_SELECTOR:
            report.warning(
                "client-key-budget-without-keys",
                "this budget is per client key, and no model listener takes client keys: "
                "it limits nothing",
                (*limit.source, "selector", "key"),
                "add `auth: {keys: [...]}` to the model listener (docs/auth.md), or select "
                "by a header.",
            )


# Headers holding a credential: as a selector, the raw key would become part of a bucket's
# name (a Redis key, a key in this process's memory) and one budget per key.
CREDENTIAL_HEADERS = frozenset({*PASSTHROUGH_AUTH_HEADERS, "proxy-authorization"})


def credential_selectors(facts: Facts, report: Reporter) -> None:
    """A budget keyed by a credential header would write the credential into the budget
    store's key names: refused, pointing to the client key's id (which is not the key)."""
    for limit in facts.config.ratelimits:
        if limit.header in CREDENTIAL_HEADERS:
            report.error(
                "credential-selector",
                f"selector key {limit.header!r} is a credential header: its value (a key) "
                "would become part of the budget's name in the store",
                (*limit.source, "selector", "key"),
                "to give each caller a budget, use `selector: {key: client_key}` with client "
                "keys on the listener (docs/auth.md): budgets are then keyed by the key's id.",
            )


# --- state storage ------------------------------------------------------------------

_POSTGRES_ONLY = ("connection_string", "timeout", "on_unavailable")


def state_storage_keys(facts: Facts, report: Reporter) -> None:
    """The postgres store's keys do nothing for sqlite or memory: say so, not skip them."""
    raw = facts.raw(("state_storage",))
    kind = raw.get("type")
    if kind == "postgres" or not isinstance(kind, str):
        return
    for key in _POSTGRES_ONLY:
        if key in raw:
            report.error(
                "state-storage-key",
                f"state_storage.{key} applies to type postgres only; this store is {kind}",
                ("state_storage", key),
                "remove it, or set `type: postgres`.",
                at_key=True,
            )
    if "path" in raw and kind != "sqlite":
        report.error(
            "state-storage-key",
            f"state_storage.path applies to type sqlite only; this store is {kind}",
            ("state_storage", "path"),
            "remove it, or set `type: sqlite`.",
            at_key=True,
        )


RULES: tuple[Rule, ...] = (
    version_features,
    provider_model_names,
    provider_interfaces,
    provider_base_urls,
    provider_defaults,
    wildcard_routes,
    provider_keys,
    duplicates,
    model_listeners,
    references,
    urls,
    redis_urls,
    filters,
    admin_port,
    client_keys,
    client_key_budgets,
    credential_selectors,
    state_storage_keys,
    not_served,
)
