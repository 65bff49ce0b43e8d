"""The screenshots of `plano traces`' viewer in docs/traces.md, made again.

    python bench/traces_screenshots.py [--out docs/images]

Seeds a store that is the same on every run (tests/trace_seed.py's six traces, and three
dozen more requests across models, routes and statuses, with signals and captured
messages, from a fixed random seed), fixes the clock and the time zone, and saves SVG
screenshots (textual's `export_screenshot`) of the viewer, driven in process with
textual's Pilot:

    traces-list.svg       the list, 120x32, dark
    traces-filter.svg     a filter applied and the bar open on it, 80x24, dark
    traces-spans.svg      a trace's Spans section, 120x32, dark
    traces-messages.svg   its Messages section, 120x32, dark
    traces-routing.svg    its Routing section, 120x32, light
    traces-calls.svg      an agent's run of three calls: its Calls section, 120x32, dark

Run it after a change to what the viewer shows, and look at the result before committing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.pilot import Pilot

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from trace_seed import CLAUDE, GPT, agent_run, seed, traced  # noqa: E402

from proxy.telemetry.store import SignalRow, StoreBatch, TraceStore  # noqa: E402

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC: the times shown are the same on every run
OUT = ROOT / "docs" / "images"
SEED = 20250615
# (model, provider, route, input $/token, output $/token): plausible list prices.
MODELS = [
    (GPT, "openai", "code", 0.15e-6, 0.6e-6),
    ("openai/gpt-4o", "openai", "reasoning", 2.5e-6, 10e-6),
    (CLAUDE, "anthropic", "reasoning", 3e-6, 15e-6),
    ("anthropic/claude-3-5-haiku", "anthropic", "summarize", 0.8e-6, 4e-6),
    ("ollama/llama3.2", "ollama", "chat", 0.0, 0.0),
]
QUESTIONS = [
    "Summarize this incident report in three bullet points",
    "Why does this Rust borrow checker error happen?",
    "Translate the release notes into German",
    "Write a SQL query for the top 10 customers by revenue",
    "Explain the difference between TCP and QUIC",
    "Refactor this Python function to use a dataclass",
]
SIGNALS = [
    ("poor", 40, [("correction", "misalignment", 1, 0.85, "no, that's not what I asked")]),
    ("severe", 15, [("frustration", "interaction", 2, 0.9, "this is still wrong!!")]),
    ("good", 80, [("gratitude", "satisfaction", 3, 0.75, "perfect, thanks")]),
]


def extra_requests(rng: random.Random) -> list[StoreBatch]:
    """Three dozen requests over the half hour before NOW, older than the seeded newest."""
    batches = []
    at = NOW - 15.0
    for n in range(36):
        at -= rng.uniform(20, 70)
        model, provider, route, price_in, price_out = rng.choice(MODELS)
        status = rng.choices([200, 429, 500, 502], [88, 5, 3, 4])[0]
        ok = status == 200
        latency = rng.lognormvariate(6.6, 0.7) if ok else rng.uniform(5, 30_000)
        tokens_in = rng.randint(80, 3000) if ok else None
        tokens_out = rng.randint(20, 900) if ok else None
        cost = tokens_in * price_in + tokens_out * price_out if tokens_in and tokens_out else None
        fields: dict[str, object] = {
            "listener": "agents" if n % 7 == 3 else "model",
            "api": rng.choice(["openai_chat", "openai_chat", "anthropic_messages"]),
            "path": "/v1/chat/completions",
            "router_backend": "embedded",
            "requested_model": "auto",
            "model": model,
            "provider": provider,
            "status": status,
            "error": None if ok else rng.choice(["upstream timeout", "HTTP 503 from upstream"]),
            "latency_ms": round(latency, 1),
            "ttft_ms": round(latency * rng.uniform(0.1, 0.4), 1) if ok else None,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cost_usd": None if provider == "ollama" else cost,
            "stream": rng.random() < 0.6,
        }
        signals = SIGNALS[n % len(SIGNALS)] if ok and n % 4 == 1 else None
        if signals is not None:
            quality, score, found = signals
            fields |= {"signal_quality": quality, "signal_score": score}
            fields["signal_count"] = len(found)
        if n % 3 == 0:
            question = rng.choice(QUESTIONS)
            fields["request_messages"] = [{"role": "user", "content": question}]
            if ok:
                fields["response_messages"] = [{"role": "assistant", "content": "Sure: …"}]
        trace_id = f"{rng.getrandbits(128):032x}"
        routed = rng.random() < 0.85
        batch = traced(
            trace_id,
            at,
            route=route if routed else None,
            scores={route: round(rng.uniform(0.6, 0.95), 2), "chat": 0.3} if routed else None,
            fallback=None if routed else "timeout",
            failed_attempts=1 if status == 200 and n % 9 == 4 else 0,
            routing_fallback=None if routed else "timeout",
            **fields,
        )
        if signals is not None:
            batch.signals = [SignalRow(trace_id, *signal) for signal in signals[2]]
        batches.append(batch)
    return batches


# An agent's run (trace_seed.agent_run's three calls), started between the two newest.
AGENT_RUN = "a9e47c0b" + "5" * 24


def make_store(path: Path) -> None:
    seed(path, NOW)
    with TraceStore.open(path) as store:
        for batch in [*extra_requests(random.Random(SEED)), *agent_run(NOW, AGENT_RUN, NOW - 12)]:
            store.write(batch)


async def shoot(
    path: Path,
    out: Path,
    name: str,
    size: tuple[int, int],
    steps: Callable[[Pilot[None]], Awaitable[None]],
    theme: str = "dark",
) -> Path:
    from textual.widgets import Input

    from plano_cli.traces_tui.app import TracesApp

    # No live polling, a fixed clock: nothing on screen depends on when this runs.
    app = TracesApp(path, now=lambda: NOW, poll_s=None, theme=theme)  # type: ignore[arg-type]
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await steps(pilot)
        await settle(pilot)
        for field in app.screen.query(Input):
            field.cursor_blink = False  # a blink would differ from run to run
        await pilot.pause()
        target = out / f"traces-{name}.svg"
        target.write_text(app.export_screenshot(title="plano traces"), encoding="utf-8")
    return target


async def settle(pilot: Pilot[None]) -> None:
    """Until no worker runs (the first page, a trace opening, the next page)."""
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in app.workers):
            return
    raise RuntimeError("the viewer's workers never settled")


def keys(*pressed: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def steps(pilot: Pilot[None]) -> None:
        for key in pressed:
            await pilot.press(key)
            await settle(pilot)

    return steps


async def main_async(out: Path) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.db"
        make_store(path)
        applied = ["slash", *f"model={GPT}", "enter"]
        # enter opens the newest request, T_CODE, which has everything: a failed attempt,
        # routing scores, signals, messages with a tool call.
        return [
            await shoot(path, out, "list", (120, 32), keys("j")),
            await shoot(path, out, "filter", (80, 24), keys(*applied, "slash")),
            await shoot(path, out, "spans", (120, 32), keys("enter", "j", "j", "j")),
            await shoot(path, out, "messages", (120, 32), keys("enter", "4")),
            await shoot(path, out, "routing", (120, 32), keys("enter", "5"), theme="light"),
            # The second row: an agent's run (AGENT_RUN, made in make_store).
            await shoot(path, out, "calls", (120, 32), keys("j", "enter", "2")),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="directory for the SVG files")
    args = parser.parse_args()
    # Times in the list are local: UTC here, so the screenshots do not depend on the
    # machine that made them.
    os.environ["TZ"] = "UTC"
    time.tzset()
    args.out.mkdir(parents=True, exist_ok=True)
    for written in asyncio.run(main_async(args.out)):
        print(written.relative_to(ROOT) if written.is_relative_to(ROOT) else written)


if __name__ == "__main__":
    main()
