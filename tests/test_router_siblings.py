"""A borrowed example about another route of the set is left out (router.SIBLING_MARGIN):
the travel type lent to a hotel route must not bring it flight questions when the set has a
flight route, as in demos/travel_agents."""

from __future__ import annotations

import pytest

from proxy.routing.backends.embedded import CLAUSE_MARGIN
from proxy.routing.embedded import EmbeddedRouter, RouteText
from proxy.routing.embedded.library import LIBRARY, lenders
from proxy.routing.embedded.router import lending_phrases, route_units

FLIGHTS = RouteText(
    "flight_agent",
    "Flights between airports, such as schedules, departures, arrivals, delays, gates and "
    "terminals.",
)
HOTELS = RouteText(
    "hotel_agent", "Hotel stays, such as room availability, prices, booking and cancellation."
)
TRAVEL = next(kind for kind in LIBRARY if kind.name == "travel")


@pytest.fixture(scope="module")
def router() -> EmbeddedRouter:
    return EmbeddedRouter.load()


def kept_for(router: EmbeddedRouter, routes: tuple[RouteText, ...], route: int) -> set[str]:
    lent = lenders([lending_phrases(r) for r in routes], router.encoder.encode)
    assert LIBRARY.index(TRAVEL) in lent[route]  # what the test is about: travel is lent
    borrowed = {route: [TRAVEL.examples]}
    groups = [route_units(r) for r in routes]
    return set(router._without_siblings_examples(borrowed, groups)[route][0])


def test_a_hotel_route_beside_a_flight_route_keeps_travels_hotel_examples_only(router):
    kept = kept_for(router, (FLIGHTS, HOTELS), 1)
    assert "Cancel my hotel reservation in Denver" in kept
    assert "Book a hotel near the Eiffel Tower for three nights" in kept
    assert "Is my flight to Denver on time?" not in kept
    assert "What's the gate for my connecting flight?" not in kept
    assert 0 < len(kept) < len(TRAVEL.examples)


def test_a_hotel_route_alone_keeps_every_travel_example(router):
    assert kept_for(router, (HOTELS,), 0) == set(TRAVEL.examples)


def test_the_demos_flight_question_goes_clearly_to_the_flight_agent(router):
    decision = router.score(
        [("user", "Is flight AZ205 to Rome on time?")], (FLIGHTS, HOTELS), threshold=0.0
    )
    assert decision.route == "flight_agent"
    assert decision.margin >= CLAUSE_MARGIN  # what a clause needs for an agent of its own
