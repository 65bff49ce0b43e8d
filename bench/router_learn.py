"""What `plano route --learn` gains on a labelled set, with traffic simulated from half of it.

Usage: python bench/router_learn.py --config YAML --data JSONL [--json PATH]

The odd lines of DATA, without their labels, go into a real trace store as captured
requests (the embedded router decided them, so no LLM label); `plano route --learn`'s code
learns from that store; the even lines are routed without and with the learned prompts.
Learning never sees the lines it is scored on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.router_embedded import load_routes  # noqa: E402
from proxy.routing.embedded import EmbeddedRouter  # noqa: E402
from proxy.routing.learn import learn, read_samples  # noqa: E402
from proxy.routing.learned import apply_learned  # noqa: E402
from proxy.telemetry.store import RequestRow, StoreBatch, TraceStore  # noqa: E402


def seed_store(path: Path, texts: list[str]) -> None:
    now = time.time()
    rows = [
        RequestRow(
            trace_id=f"{i:032x}",
            span_id=f"{i:016x}",
            started_at=now - i,
            router_backend="embedded",
            status=200,
            outcome="ok",
            request_messages=[{"role": "user", "content": text}],
        )
        for i, text in enumerate(texts)
    ]
    with TraceStore.open(path) as store:
        store.write(StoreBatch(requests=rows))


def score(router, routes, rows) -> dict:
    inside = [r for r in rows if r["route"] != "other"]
    outside = [r for r in rows if r["route"] == "other"]
    got = {r["text"]: router.score([("user", r["text"])], routes).route for r in rows}
    return {
        "domain_accuracy": sum(got[r["text"]] == r["route"] for r in inside) / len(inside),
        "out_of_scope_recall": sum(got[r["text"]] is None for r in outside) / max(len(outside), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    train, test = rows[1::2], rows[0::2]
    router = EmbeddedRouter.load()
    routes = tuple(load_routes(args.config))
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "traces.db"
        seed_store(store, [r["text"] for r in train])
        samples = read_samples(store)
    learned = learn(router, routes, samples)
    labels = {r["text"]: r["route"] for r in train}
    right = sum(labels.get(e) == n for n, r in learned.routes.items() for e in r.examples)
    taught, _ = apply_learned(routes, learned)
    result = {
        "config": str(args.config.name),
        "learned_examples": learned.examples,
        "learned_label_accuracy": round(right / max(learned.examples, 1), 4),
        "before": score(router, routes, test),
        "after": score(router, taught, test),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
