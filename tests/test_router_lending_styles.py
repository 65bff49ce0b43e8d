"""Lending to routes described tersely or in the first person (library.lenders): a route that
names a type borrows it, and a route's closest type lends at a lower similarity."""

from __future__ import annotations

import pytest

from proxy.routing.embedded import EmbeddedRouter, RouteText
from proxy.routing.embedded.library import (
    BORROW_SIMILARITY,
    CLOSEST_BORROW_SIMILARITY,
    LIBRARY,
    lenders,
    route_similarity,
)
from proxy.routing.embedded.router import lending_phrases

NAMES = [kind.name for kind in LIBRARY]


@pytest.fixture(scope="module")
def router() -> EmbeddedRouter:
    return EmbeddedRouter.load()


def lent(router: EmbeddedRouter, *routes: RouteText) -> list[set[str]]:
    found = lenders([lending_phrases(r) for r in routes], router.encoder.encode)
    return [{NAMES[k] for k in found.get(i, ())} for i in range(len(routes))]


def similarity(router: EmbeddedRouter, route: RouteText, name: str) -> float:
    per_kind = route_similarity(lending_phrases(route), router.encoder.encode)
    return float(per_kind[NAMES.index(name)])


def test_a_route_naming_a_type_borrows_it(router):
    route = RouteText("prefs", "assistant settings")
    assert similarity(router, route, "assistant settings") == pytest.approx(1.0, abs=1e-4)
    assert lent(router, route) == [{"assistant settings"}]


def test_a_routes_closest_type_lends_below_the_general_similarity(router):
    route = RouteText("work", "job, pay, time off, benefits")
    closeness = similarity(router, route, "workplace and HR")
    assert CLOSEST_BORROW_SIMILARITY <= closeness < BORROW_SIMILARITY  # what this pins
    assert lent(router, route) == [{"workplace and HR"}]
