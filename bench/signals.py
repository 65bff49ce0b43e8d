"""How long one `analyze()` takes on conversations of 5, 20 and 50 messages.

    python bench/signals.py [--runs 2000] [--seed 7]

Generates conversations of two kinds, every message text unique: "agent" (tool calls with
JSON arguments and results, many of them failures, and a few user turns, most of them
charged) and "chat" (user and assistant turns, a third of the user turns charged). Prints p50/p99 in
microseconds for a cold analysis (per-message caches cleared before each call: a stored
trace analysed once) and for the next turn (the same conversation analysed before without
its last exchange: what the gateway does after each response).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from proxy.percentiles import percentile
from proxy.telemetry.signals import analyze, clear_caches

USER = [
    "How do I paginate this API response in Python?",
    "Can you add retries with exponential backoff to the client?",
    "That's not right, the cursor is in the response header.",
    "Thanks, that works now!",
    "It still doesn't work, I get the same error again.",
    "What do you mean by an idempotency key?",
    "Please also write unit tests for the pagination helper.",
    "Forget it, this is a waste of time.",
]
NEUTRAL = [
    "Which HTTP client would you use for this?",
    "How should the helper report partial failures?",
    "Can the page size be configurable?",
    "Where should the cursor be stored between runs?",
    "Please add type hints to the helper.",
    "How would this look with asyncio?",
]
SENTENCES = [
    "Read the `next` cursor from each page and request the following page until it is empty.",
    "Yield the items as you go so memory stays flat.",
    "Wrap the request in a retry loop with exponential backoff and jitter.",
    "Keep the page size as a parameter with a sensible default of 100.",
    "Log the cursor at debug level so a failed run can resume.",
    "Here is the helper:\n```python\ndef pages(client, url):\n    ...\n```",
    "Tests can stub the client with a list of canned pages.",
    "With asyncio the loop is the same, with `await` on each request.",
    "Partial failures can be collected and raised together at the end.",
    "Store the cursor in a small state file next to the output.",
]


def answer(rng: random.Random) -> str:
    return " ".join(rng.sample(SENTENCES, rng.randint(2, 6)))


RESULTS = [
    '{"items": [1, 2, 3], "next": "abc"}',
    "Error: invalid argument 'cursor': expected a string",
    "HTTP 503 Service Unavailable",
    '{"items": [], "next": null}',
]

Msg = dict[str, Any]


def agent(size: int, rng: random.Random) -> list[Msg]:
    msgs: list[Msg] = [{"role": "system", "content": "You are a coding agent."}]
    while len(msgs) < size:
        step, tag = len(msgs), f"(ref {rng.randrange(10**9)})"
        if msgs[-1]["role"] in ("system", "assistant") and rng.random() < 0.4:
            msgs.append({"role": "user", "content": f"{rng.choice(USER)} {tag}"})
        elif rng.random() < 0.7:
            args = {"url": "https://api.example.com/items", "cursor": rng.choice("abc")}
            call = {"name": "http_get", "arguments": json.dumps(args)}
            msgs.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": f"c{step}", "type": "function", "function": call}],
                }
            )
            result = f"{rng.choice(RESULTS)} {tag}"
            msgs.append({"role": "tool", "tool_call_id": f"c{step}", "content": result})
        else:
            msgs.append({"role": "assistant", "content": f"{answer(rng)} {tag}"})
    return msgs[:size]


def chat(size: int, rng: random.Random) -> list[Msg]:
    msgs: list[Msg] = []
    while len(msgs) < size:
        tag = f"(ref {rng.randrange(10**9)})"
        if not msgs or msgs[-1]["role"] == "assistant":
            pool = USER if rng.random() < 0.3 else NEUTRAL
            msgs.append({"role": "user", "content": f"{rng.choice(pool)} {tag}"})
        else:
            msgs.append({"role": "assistant", "content": f"{answer(rng)} {tag}"})
    return msgs


def timed(convs: list[list[Msg]], runs: int, before: Callable[[list[Msg]], None]) -> list[float]:
    samples = []
    for i in range(runs):
        conv = convs[i % len(convs)]
        before(conv)
        begin = time.perf_counter()
        analyze(conv)
        samples.append((time.perf_counter() - begin) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    header = f"{'kind':>6} {'messages':>8} {'signals':>8}"
    print(f"{header} {'cold p50':>9} {'cold p99':>9} {'next p50':>9} {'next p99':>9}  (µs)")
    for kind, make in (("agent", agent), ("chat", chat)):
        for size in (5, 20, 50):
            convs = [make(size, rng) for _ in range(50)]
            for conv in convs:  # warm the regex and allocator caches
                analyze(conv)
            signals = sum(len(analyze(c).signals) for c in convs) / len(convs)
            cold = timed(convs, args.runs, lambda _: clear_caches())
            clear_caches()
            warm = timed(convs, args.runs, lambda conv: analyze(conv[:-2]))
            row = f"{kind:>6} {size:>8} {signals:>8.1f}"
            p = [percentile(s, q) for s in (cold, warm) for q in (50, 99)]
            print(f"{row} {p[0]:>9.0f} {p[1]:>9.0f} {p[2]:>9.0f} {p[3]:>9.0f}")


if __name__ == "__main__":
    main()
