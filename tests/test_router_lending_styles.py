"""Lending to routes described tersely or in the first person (library.lending, router.py):
a route that names a type borrows it, a route's closest type lends at a lower similarity, and
a type a route comes near stays out of the reject class."""

from __future__ import annotations

import numpy as np
import pytest

from proxy.routing.embedded import EmbeddedRouter, RouteText
from proxy.routing.embedded.library import (
    BORROW_SIMILARITY,
    CLOSEST_BORROW_SIMILARITY,
    LIBRARY,
    lenders,
    route_similarity,
)
from proxy.routing.embedded.router import UNCLAIMED_SIMILARITY, lending_phrases

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


def test_a_type_a_route_comes_near_is_not_rejected(router):
    """A terse car route that does not borrow car maintenance must not have car questions in
    its reject class either."""
    route = RouteText("auto", "driving, traffic, directions and car care")
    cars = NAMES.index("cars and vehicle maintenance")
    closeness = similarity(router, route, "cars and vehicle maintenance")
    assert UNCLAIMED_SIMILARITY <= closeness < CLOSEST_BORROW_SIMILARITY  # what this pins
    assert "cars and vehicle maintenance" not in lent(router, route)[0]
    background = router.index((route,)).background
    examples = router.encoder.encode(list(LIBRARY[cars].examples))
    assert float((examples @ background.T).max()) < 0.999
    # A type no route comes near still joins it.
    weather = router.encoder.encode(list(LIBRARY[NAMES.index("weather")].examples))
    assert np.isclose((weather @ background.T).max(axis=1), 1.0, atol=1e-3).all()
