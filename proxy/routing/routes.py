"""Routes as the router sees them: from the config, or brought by one request's body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from proxy.config.model import Config

# Body keys that carry per-request routes; both are stripped before forwarding.
# `routing_preferences` is upstream's shape; `routing_policy` the seed demo's.
ROUTING_BODY_KEYS = ("routing_preferences", "routing_policy")
PREFER_VALUES = ("none", "cheapest", "fastest")
MAX_BODY_ROUTES = 64
MAX_NAME_CHARS = 128


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    description: str
    models: tuple[str, ...] = ()
    prefer: str = "none"
    examples: tuple[str, ...] = ()
    learned: tuple[str, ...] = ()  # from traffic: `plano route --learn` (learned.py)


class RouteSpecError(ValueError):
    """A request brought routes the router cannot use; the client gets a 400."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.message, self.param = message, param


def routes_from_config(config: Config) -> tuple[Route, ...]:
    return tuple(
        Route(r.name, r.description, tuple(r.models), r.prefer or "none", tuple(r.examples))
        for r in config.routes
    )


def routes_from_body(body: Mapping[str, object]) -> tuple[Route, ...] | None:
    """Per-request routes, or None when the body brings none.

    Two shapes are read under either key: upstream's v0.4 list of
    `{name, description, models, selection_policy}`, and the policy list
    `[{model, routing_preferences: [{name, description}]}]` (one model, many routes).
    """
    for key in ROUTING_BODY_KEYS:
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not value:
            raise RouteSpecError(f"'{key}' must be a non-empty list of routes", key)
        if len(value) > MAX_BODY_ROUTES:
            raise RouteSpecError(f"'{key}' has more than {MAX_BODY_ROUTES} entries", key)
        routes: list[Route] = []
        for i, item in enumerate(value):
            where = f"{key}[{i}]"
            if not isinstance(item, dict):
                raise RouteSpecError(f"'{where}' must be an object", where)
            nested = item.get("routing_preferences", item.get("orchestration_preferences"))
            if "model" in item and nested is not None:
                routes += _policy_routes(item, nested, where)
            else:
                routes.append(_preference_route(item, where))
        names = [r.name for r in routes]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise RouteSpecError(f"route '{duplicate}' is given more than once", key)
        return tuple(routes)
    return None


def strip_routing_keys(body: dict) -> dict:
    """The body without per-request routes, so providers never see them."""
    if not any(key in body for key in ROUTING_BODY_KEYS):
        return body
    return {k: v for k, v in body.items() if k not in ROUTING_BODY_KEYS}


def _preference_route(item: dict, where: str) -> Route:
    name, description = _text(item, "name", where), _text(item, "description", where)
    models = item.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise RouteSpecError(f"'{where}.models' must be a non-empty list of model names", where)
    policy = item.get("selection_policy") or {}
    prefer = policy.get("prefer", "none") if isinstance(policy, dict) else "none"
    if prefer not in PREFER_VALUES:
        raise RouteSpecError(
            f"'{where}.selection_policy.prefer' must be one of {', '.join(PREFER_VALUES)}", where
        )
    return Route(name, description, tuple(models), prefer, _examples(item, where))


def _policy_routes(item: dict, nested: object, where: str) -> list[Route]:
    model = item.get("model")
    if not isinstance(model, str) or not model:
        raise RouteSpecError(f"'{where}.model' must be a model name", where)
    if not isinstance(nested, list) or not nested:
        raise RouteSpecError(f"'{where}.routing_preferences' must be a non-empty list", where)
    routes = []
    for j, pref in enumerate(nested):
        inner = f"{where}.routing_preferences[{j}]"
        if not isinstance(pref, dict):
            raise RouteSpecError(f"'{inner}' must be an object", inner)
        routes.append(
            Route(
                _text(pref, "name", inner),
                _text(pref, "description", inner),
                (model,),
                "none",
                _examples(pref, inner),
            )
        )
    return routes


def _text(item: dict, key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RouteSpecError(f"'{where}.{key}' must be a non-empty string", where)
    value = value.strip()
    if key == "name" and (len(value) > MAX_NAME_CHARS or not value.isprintable()):
        # A route name goes into a response header and the access log.
        raise RouteSpecError(
            f"'{where}.name' must be printable text of at most {MAX_NAME_CHARS} characters",
            where,
        )
    return value


def _examples(item: dict, where: str) -> tuple[str, ...]:
    value = item.get("examples", [])
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise RouteSpecError(f"'{where}.examples' must be a list of strings", where)
    return tuple(value)


def route_key(routes: Sequence[Route]) -> tuple:
    """What identifies a route set for caching decisions."""
    return tuple((r.name, r.description, r.examples, r.models, r.prefer) for r in routes)
