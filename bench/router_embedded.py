"""The embedded router on a labelled prompt set: accuracy, out-of-scope recall, latency.

Usage: python bench/router_embedded.py [--config YAML] [--data JSONL] [--threshold T]
           [--limit N] [--json PATH]

Defaults: the CLINC150 dev pair in ../shared/data (beside the checkout). The config's
`routing_preferences` (name, description, optional examples) are the routes; each jsonl line
is {"text", "route"}, route "other" meaning out of scope (no route is right). Accuracy counts
an in-scope prompt routed to none as wrong. Latency is per decision (one `score()` call on a
single prompt, encoding included) after the route index is built; load time is the encoder's,
index time is the first build (background included), both reported apart.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from proxy.routing.embedded import EmbeddedRouter, RouteText  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
OUT_OF_SCOPE = "other"
SWEEP = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5)


def load_routes(path: Path) -> list[RouteText]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        RouteText(
            name=str(p["name"]),
            description=str(p.get("description") or ""),
            examples=tuple(str(e) for e in p.get("examples") or ()),
        )
        for p in config.get("routing_preferences") or ()
    ]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else 0.0


def evaluate(
    labels: list[str], best: list[str], top: list[float], threshold: float
) -> tuple[float, float]:
    """(accuracy on in-scope prompts, out-of-scope recall) at a threshold."""
    rows = zip(labels, best, top, strict=True)
    inside = [(lab, b, t) for lab, b, t in rows if lab != OUT_OF_SCOPE]
    outside = [t for lab, t in zip(labels, top, strict=True) if lab == OUT_OF_SCOPE]
    accuracy = sum(b == lab and t >= threshold for lab, b, t in inside) / max(len(inside), 1)
    recall = sum(t < threshold for t in outside) / max(len(outside), 1)
    return accuracy, recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=SHARED / "clinc150_routes.yaml")
    parser.add_argument("--data", type=Path, default=SHARED / "clinc150_val.jsonl")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N prompts")
    parser.add_argument("--json", type=Path, default=REPO / "bench/results/router_embedded.json")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines()]
    rows = rows[: args.limit] if args.limit else rows
    routes = load_routes(args.config)

    started = time.perf_counter()
    router = EmbeddedRouter.load()
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    router.index(routes)
    index_s = time.perf_counter() - started
    threshold = router.DEFAULT_THRESHOLD if args.threshold is None else args.threshold

    labels, best, top, latencies = [], [], [], []
    for row in rows:
        started = time.perf_counter()
        result = router.score([("user", row["text"])], routes, threshold=threshold)
        latencies.append((time.perf_counter() - started) * 1000)
        labels.append(row["route"])
        best.append(result.best)
        top.append(result.scores[result.best])

    accuracy, recall = evaluate(labels, best, top, threshold)
    top1 = sum(b == lab for lab, b in zip(labels, best, strict=True) if lab != OUT_OF_SCOPE)
    top1 /= max(sum(lab != OUT_OF_SCOPE for lab in labels), 1)
    sweep = {f"{t:g}": evaluate(labels, best, top, t) for t in SWEEP}
    per_route = {}
    for name in sorted(set(labels)):
        got = Counter(
            b if t >= threshold else None
            for lab, b, t in zip(labels, best, top, strict=True)
            if lab == name
        )
        right = got[None] if name == OUT_OF_SCOPE else got[name]
        wrong = [(str(k), v) for k, v in got.most_common() if k != name]
        confused = [(k, v) for k, v in wrong if not (name == OUT_OF_SCOPE and k == "None")][:4]
        per_route[name] = {"n": sum(got.values()), "right": right, "confused_with": confused}

    print(f"routes {len(routes)}  prompts {len(rows)}  threshold {threshold:g}")
    print(f"accuracy {accuracy:.4f}  (top-1 ignoring the threshold {top1:.4f})")
    print(f"out-of-scope recall {recall:.4f}")
    print(f"latency ms  p50 {percentile(latencies, 50):.2f}  p99 {percentile(latencies, 99):.2f}")
    print(f"load {load_s * 1000:.0f} ms  first index build {index_s * 1000:.0f} ms")
    print("threshold  accuracy  oos_recall")
    for t, (a, r) in sweep.items():
        print(f"{t:>9}  {a:8.4f}  {r:10.4f}")
    for name, stats in per_route.items():
        print(f"  {name:20} {stats['right']:4}/{stats['n']:<4} {stats['confused_with']}")

    record = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": "python3 " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"python": platform.python_version(), "processor": platform.processor()},
        "config": args.config.name,
        "data": args.data.name,
        "prompts": len(rows),
        "threshold": threshold,
        "accuracy": round(accuracy, 4),
        "top1_accuracy": round(top1, 4),
        "oos_recall": round(recall, 4),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 3),
            "p90": round(percentile(latencies, 90), 3),
            "p99": round(percentile(latencies, 99), 3),
        },
        "load_ms": round(load_s * 1000, 1),
        "index_build_ms": round(index_s * 1000, 1),
        "threshold_sweep": {t: {"accuracy": a, "oos_recall": r} for t, (a, r) in sweep.items()},
        "per_route": per_route,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
