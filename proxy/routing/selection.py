"""Order a route's models by its selection policy: cheapest, fastest, or as written."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from proxy.pricing import Price, price_for
from proxy.routing.latency import LatencyTracker


def rank_models(
    models: Sequence[str],
    prefer: str,
    latencies: LatencyTracker | None = None,
    prices: Mapping[str, Price] | None = None,
) -> list[str]:
    ordered = list(dict.fromkeys(models))
    if prefer == "cheapest":
        # Unknown prices sort last, keeping the written order among themselves.
        def cost(model: str) -> float:
            price = price_for(model, prices)
            return price.blended if price is not None else float("inf")

        return sorted(ordered, key=cost)
    if prefer == "fastest" and latencies is not None:
        return sorted(ordered, key=lambda m: latencies.expected_seconds(m))
    return ordered
