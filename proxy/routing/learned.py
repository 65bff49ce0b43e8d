"""The learned-routes file: prompts from traffic that `plano route --learn` assigned to routes.

`plano up` loads it when `routing.router.learned_routes` names it: each route's learned
prompts join its prototypes (router.py scores them with the borrowed library examples, a
little below the route's own words). A route the file names that the config no longer has is
left out and counted, so an edited config never routes to a route that is gone.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

FORMAT = 1
MAX_EXAMPLES_PER_ROUTE = 64
MAX_EXAMPLE_CHARS = 1000


class LearnedRoutesError(ValueError):
    """The file cannot be read as learned routes; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LearnedRoute:
    examples: tuple[str, ...]
    from_llm: int = 0  # of the examples, how many the LLM router labeled
    self_trained: int = 0  # and how many the embedded router was confident about


@dataclass(frozen=True, slots=True)
class LearnedRoutes:
    routes: dict[str, LearnedRoute] = field(default_factory=dict)
    learned_at: float = 0.0
    prompts_read: int = 0

    @property
    def examples(self) -> int:
        return sum(len(r.examples) for r in self.routes.values())

    def as_json(self) -> dict:
        return {
            "format": FORMAT,
            "learned_at": self.learned_at,
            "prompts_read": self.prompts_read,
            "routes": {
                name: {
                    "examples": list(route.examples),
                    "from_llm": route.from_llm,
                    "self_trained": route.self_trained,
                }
                for name, route in self.routes.items()
            },
        }


def write_learned(path: Path, learned: LearnedRoutes) -> None:
    """Write atomically: a gateway starting meanwhile reads the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(learned.as_json(), out, indent=1, ensure_ascii=False)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_learned(path: Path) -> LearnedRoutes:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LearnedRoutesError(
            f"{path} does not exist: run `plano route --learn` to write it"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LearnedRoutesError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LearnedRoutesError(f"{path}: not a learned-routes file of format {FORMAT}")
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, dict):
        raise LearnedRoutesError(f'{path}: "routes" must be an object')
    routes: dict[str, LearnedRoute] = {}
    for name, raw in raw_routes.items():
        examples = raw.get("examples") if isinstance(raw, dict) else None
        if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
            raise LearnedRoutesError(f'{path}: route {name!r} needs "examples", a list of text')
        kept = tuple(e[:MAX_EXAMPLE_CHARS] for e in examples if e.strip())
        routes[name] = LearnedRoute(
            kept[:MAX_EXAMPLES_PER_ROUTE],
            _count(raw.get("from_llm")),
            _count(raw.get("self_trained")),
        )
    return LearnedRoutes(
        routes, _timestamp(data.get("learned_at")), _count(data.get("prompts_read"))
    )


class _LearningRoute(Protocol):
    """A config Route or the embedded router's RouteText: a name and learned prompts."""

    @property
    def name(self) -> str: ...

    @property
    def learned(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=_LearningRoute)


def apply_learned(routes: tuple[R, ...], learned: LearnedRoutes) -> tuple[tuple[R, ...], list[str]]:
    """The routes with their learned prompts; and the file's routes the config lacks."""
    names = {route.name for route in routes}
    applied = tuple(
        replace(route, learned=learned.routes[route.name].examples)
        if route.name in learned.routes
        else route
        for route in routes
    )
    return applied, sorted(set(learned.routes) - names)


def _timestamp(value: object) -> float:
    """A Unix time `plano up` can print; 0 (unknown) for anything else: 1e300, NaN and
    10**400 are JSON numbers too, and time.localtime refuses them."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return 0.0
    try:
        seconds = float(value)
    except OverflowError:
        return 0.0
    return seconds if math.isfinite(seconds) and 0 <= seconds < 2**32 else 0.0


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
