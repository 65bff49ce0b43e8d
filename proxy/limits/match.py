"""Which `ratelimits` entries a request falls under, and the bucket of each.

Built once per config: each entry's model (a model, an alias or a route name) is resolved to
the provider/model_id names requests go to, so matching a request is a set lookup on the
model it resolved to, and a header read. Upstream compares the raw model id instead, so a
client naming an alias would escape its target's budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import CIMultiDictProxy

from proxy.config.model import CLIENT_KEY_SELECTOR, Config, RateLimit

# The header naming which header selects the budget (upstream's opt-in).
SELECTOR_HEADER = "x-arch-ratelimit-selector"
# A selector value becomes part of a bucket key (and a Redis key): kept short.
MAX_VALUE_BYTES = 256


class SelectorError(Exception):
    """A selector header the gateway cannot use: a 400 in the client's shape."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A configured limit, resolved: the models it covers and how it is labelled."""

    index: int  # position in `ratelimits`: part of the bucket key
    limit: RateLimit
    models: frozenset[str]  # provider/model_id
    providers: frozenset[str]  # `openai/*`: every model of the provider
    label: str  # for metrics: "x-team=blue", "x-team", "client_key"

    def covers(self, model: str) -> bool:
        return model in self.models or model.partition("/")[0] in self.providers


@dataclass(frozen=True, slots=True)
class Match:
    rule: Rule
    bucket: str  # the key in the Buckets backend


class Matcher:
    def __init__(self, config: Config):
        self.rules = tuple(_rule(config, i, limit) for i, limit in enumerate(config.ratelimits))
        self.headers = frozenset(
            r.limit.header for r in self.rules if r.limit.header != CLIENT_KEY_SELECTOR
        )

    def match(
        self, model: str, headers: CIMultiDictProxy[str], client_key_id: str | None
    ) -> list[Match]:
        """The limits this request counts against. Raises SelectorError."""
        selected = _selected_header(headers, self.headers)
        found: list[Match] = []
        for rule in self.rules:
            limit = rule.limit
            if limit.header == CLIENT_KEY_SELECTOR:
                value = client_key_id
            elif limit.header == selected:
                value = _header_value(headers, selected)
            else:
                continue
            if value is None or (limit.value is not None and value != limit.value):
                continue
            if not rule.covers(model):
                continue
            found.append(Match(rule, f"{rule.index}:{limit.header}:{value}"))
        return found


def _rule(config: Config, index: int, limit: RateLimit) -> Rule:
    models: set[str] = set()
    providers: set[str] = set()
    route = next((r for r in config.routes if r.name == limit.model), None)
    names = (
        route.models
        if route is not None and config.models.resolve(limit.model) is None
        else (limit.model,)
    )
    for name in names:
        resolved = config.models.resolve(name)
        if resolved is None:
            continue  # reported by the config's rules
        if resolved.model_id == "*":
            providers.add(resolved.provider.provider)
        else:
            models.add(resolved.model)
    label = limit.header if limit.value is None else f"{limit.header}={limit.value}"
    return Rule(index, limit, frozenset(models), frozenset(providers), label)


def _selected_header(headers: CIMultiDictProxy[str], known: frozenset[str]) -> str | None:
    """The header the client named, when a limit uses it; others are ignored as upstream
    does (a client may name a header no budget is set for)."""
    named = headers.getall(SELECTOR_HEADER, ())
    if not named:
        return None
    if len(named) > 1:
        raise SelectorError(f"send one {SELECTOR_HEADER} header, not {len(named)}")
    name = named[0].strip().lower()
    return name if name in known else None


def _header_value(headers: CIMultiDictProxy[str], name: str) -> str | None:
    values = headers.getall(name, ())
    if not values:
        return None
    if len(values) > 1:
        # Two values would let a client pick the bucket it is charged to.
        raise SelectorError(f"send one {name} header (a rate-limit selector), not {len(values)}")
    value = values[0]
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # aiohttp keeps non-UTF-8 bytes as lone surrogates
        raise SelectorError(f"header {name} is not valid UTF-8") from None
    if size > MAX_VALUE_BYTES:
        raise SelectorError(
            f"header {name} is {size} bytes; a rate-limit selector value is at most "
            f"{MAX_VALUE_BYTES}"
        )
    return value
