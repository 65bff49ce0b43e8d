"""What each model's recent requests took: the input to `prefer: fastest`."""

from __future__ import annotations

import threading

_ALPHA = 0.2  # weight of the newest observation: follows drift within a few dozen requests


class LatencyTracker:
    """Exponentially weighted mean time to first token (or to the answer), per model."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, model: str, seconds: float) -> None:
        with self._lock:
            previous = self._seconds.get(model)
            self._seconds[model] = (
                seconds if previous is None else previous + _ALPHA * (seconds - previous)
            )

    def expected_seconds(self, model: str) -> float:
        # Never measured: try it first, so that it gets measured.
        return self._seconds.get(model, 0.0)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)
