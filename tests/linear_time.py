"""A complexity check that does not flake under load: how the CPU time grows with size.

Wall-clock speed is never asserted. What is asserted is a ratio: the CPU time of the large
input over that of the small one, each the best of several runs of `time.process_time`
(CPU time, so waiting for a core does not count; the best run, so a stolen cache does
little). A linear function gives about the size ratio; a quadratic one its square, so a
margin of 4x over the size ratio still tells them apart (64x the size: linear is ~64x,
quadratic ~4096x).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

RUNS = 3
MARGIN = 4
# The small input is timed over several calls, so that timer resolution and call
# overhead do not make it look cheaper than it is.
_MIN_SAMPLE_S = 0.002


def cpu_time(call: Callable[[], Any], runs: int = RUNS) -> float:
    """The best of `runs` timings of `call`, in CPU seconds per call."""
    repeat = 1
    while True:
        start = time.process_time()
        for _ in range(repeat):
            call()
        spent = time.process_time() - start
        if spent >= _MIN_SAMPLE_S or repeat >= 1 << 12:
            break
        repeat *= 4
    best = spent / repeat
    for _ in range(runs - 1):
        start = time.process_time()
        for _ in range(repeat):
            call()
        best = min(best, (time.process_time() - start) / repeat)
    return best


def growth(function: Callable[[Any], Any], small: Any, large: Any) -> float:
    """How many times more CPU `function(large)` takes than `function(small)`."""
    small_s = cpu_time(lambda: function(small))
    large_s = cpu_time(lambda: function(large))
    return large_s / max(small_s, 1e-7)


def assert_linear(
    function: Callable[[Any], Any],
    make: Callable[[int], Any],
    small: int = 1024,
    large: int = 64 * 1024,
    what: str = "",
) -> None:
    """`function(make(large))` costs at most MARGIN times `large / small` as much CPU as
    `function(make(small))`."""
    ratio = growth(function, make(small), make(large))
    bound = MARGIN * large / small
    assert ratio <= bound, (
        f"{what or function.__name__}: {large} took {ratio:.0f}x the time of {small}"
        f" (linear would be ~{large / small:.0f}x, the bound is {bound:.0f}x)"
    )
