"""How long the PII guardrail's core takes per KB of prompt.

    python bench/pii.py [--kb 1 8 64] [--runs 200] [--seed 7]

Builds prompts of realistic prose (code, numbers, dates, versions: the look-alikes that
make detectors work) with one piece of personal data or a credential in about every
300 characters, and times `find`, `redact` and `Anonymizer.anonymize` on each size.
Prints the median and p99 in milliseconds per KB (the issue's goal: under 0.2 ms per KB).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from proxy.filters.builtin import build_builtin, pii
from proxy.percentiles import percentile

PROSE = [
    "Please summarise the attached report for the board meeting on 2024-03-15.",
    "The build on version 2.14.3 fails with error code 4012 in step 7 of 12.",
    "def handler(event): return {'status': 200, 'items': event.get('items', [])}",
    "Order 1234567890123 shipped on 15/01/2024; tracking 9400 1000 0000 0000 0000 00.",
    "We moved the cluster to us-east-1 and raised the timeout from 30s to 120s.",
    "See ISBN 978-3-16-148410-0, chapter 3, pages 45-67, for the proof.",
    "The ratio went from 0.25 to 0.75 over 3 quarters, a 200% increase.",
    "Meeting at 10:30:00 UTC; dial-in code 123456789 (not a phone number).",
]
PII = [
    "Write to jane.roe@example.com.",
    "Call me on +44 20 7946 0958.",
    "Card 4111 1111 1111 1111, exp 12/27.",
    "IBAN DE89 3704 0044 0532 0130 00.",
    "SSN 078-05-1120.",
    "From host 10.20.30.40 and 2001:db8::1.",
    "Key sk-proj-abc123DEF456ghi789jkl.",
    "Authorization: Bearer abc123def456ghi789.",
]


def prompt(size: int, rng: random.Random) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        part = rng.choice(PII) if rng.random() < 0.25 else rng.choice(PROSE)
        parts.append(part)
        length += len(part) + 1
    return " ".join(parts)[:size]


redact_filter = build_builtin("pii", {"action": "redact"})


def chat_body(text: str) -> dict:
    fifth = len(text) // 5
    parts = [text[i * fifth : (i + 1) * fifth if i < 4 else len(text)] for i in range(5)]
    roles = ["system", "user", "assistant", "user", "user"]
    return {
        "model": "m",
        "messages": [{"role": r, "content": p} for r, p in zip(roles, parts, strict=True)],
    }


def per_kb(call: Callable[[str], object], texts: list[str]) -> list[float]:
    """Milliseconds per KB for each text (CPU time)."""
    times = []
    for text in texts:
        start = time.process_time_ns()
        call(text)
        times.append((time.process_time_ns() - start) / 1e6 / (len(text) / 1024))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    calls: dict[str, Callable[[str], object]] = {
        "find": pii.find,
        "redact": pii.redact,
        "anonymize": lambda text: pii.Anonymizer().anonymize(text),
        # The filter as the chain runs it: the body walked by texts.py, the prompt split
        # over a system prompt and four turns, the new body serialized.
        "filter redact (chat body)": lambda text: redact_filter.check_request(
            chat_body(text), "openai_chat", {}
        ),
    }
    print("| prompt | call | ms/KB p50 | ms/KB p99 |\n|---:|---|---:|---:|")
    for kb in args.kb:
        texts = [prompt(kb * 1024, rng) for _ in range(args.runs)]
        for name, call in calls.items():
            call(texts[0])  # warm up
            times = sorted(per_kb(call, texts))
            p50, p99 = percentile(times, 50), percentile(times, 99)
            print(f"| {kb} KB | {name} | {p50:.3f} | {p99:.3f} |")


if __name__ == "__main__":
    main()
