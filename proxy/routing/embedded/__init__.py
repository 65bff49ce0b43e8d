"""The embedded CPU router: all-MiniLM-L6-v2 run in numpy, offline and in-process."""

from proxy.routing.embedded.router import EmbeddedRouter, EmbeddedScores, RouteIndex, RouteText
from proxy.routing.embedded.weights import RouterModelUnavailable

__all__ = ["EmbeddedRouter", "EmbeddedScores", "RouteIndex", "RouteText", "RouterModelUnavailable"]
