"""The prompt-injection detector's detection rate, false-positive rate and time per prompt.

    python bench/injection.py --eval          # the held-out sets: the numbers to report
    python bench/injection.py --dev           # the development set (weights were set on it)
    python bench/injection.py --eval --threshold 0.3 0.5 0.7

Sets (tests/data):
- injection_dev.jsonl: written for tuning the heuristics' weights and the similarity
  logistic; rates on it are optimistic by construction;
- injection_eval.jsonl: written separately, after the detector's patterns and the dev set,
  and never tuned on;
- bastioncorpus/injections.jsonl: a public labeled corpus (the `bastioncorpus` PyPI
  package, MIT), never tuned on.

Per set: detection rate (attacks scored at or above the threshold), false-positive rate
(benign prompts at or above it), and the p50 / p99 of one prompt's score in ms of wall
time with the encoder warm (the detector's `score`, as the filter calls it per text: the
encoder is skipped once the heuristics reach the first threshold given, so time it with
one threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.filters.builtin.injection import DEFAULT_THRESHOLD, Detector  # noqa: E402
from proxy.percentiles import percentile  # noqa: E402

DATA = ROOT / "tests" / "data"
DEV = {"dev": DATA / "injection_dev.jsonl"}
EVAL = {
    "eval": DATA / "injection_eval.jsonl",
    "bastioncorpus": DATA / "bastioncorpus" / "injections.jsonl",
}


def load(path: Path) -> list[tuple[str, bool, str]]:
    """(text, is_attack, group) per row; group is the row's kind (or language)."""
    rows = []
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        attack = row["label"] in ("attack", "malicious")
        group = row.get("kind") or row.get("category", "")
        if row.get("lang", "en") != "en":
            group = f"lang:{row['lang']}"
        rows.append((row["text"], attack, group))
    return rows


def run(
    detector: Detector, rows: list[tuple[str, bool, str]], enough: float
) -> tuple[list[float], list[float], list[bool]]:
    scores, times, encoded = [], [], []
    for text, _, _ in rows:
        start = time.perf_counter()
        score = detector.score(text, enough)
        times.append((time.perf_counter() - start) * 1000)
        scores.append(score.value)
        encoded.append(score.encoded)
    return scores, times, encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--eval", action="store_true", help="the held-out sets")
    which.add_argument("--dev", action="store_true", help="the development set")
    parser.add_argument("--threshold", type=float, nargs="+", default=[DEFAULT_THRESHOLD])
    parser.add_argument("--misses", action="store_true", help="print the misclassified prompts")
    parser.add_argument("--repeat", type=int, default=3, help="timing passes (the best is kept)")
    args = parser.parse_args()

    detector = Detector()
    detector.warm()
    for text in ("warm up the encoder", "ignore previous rules please"):
        detector.similarity(text)
    sets = DEV if args.dev else EVAL
    columns = "set threshold attacks detected benign false_positives p50_ms p99_ms encoder_ran"
    print("| " + " | ".join(c.replace("_", " ") for c in columns.split()) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    misses: list[str] = []
    for name, path in sets.items():
        rows = load(path)
        best_times: list[float] | None = None
        for _ in range(args.repeat):
            scores, times, encoded = run(detector, rows, min(args.threshold[0], 0.9))
            if best_times is None or percentile(sorted(times), 50) < percentile(
                sorted(best_times), 50
            ):
                best_times = times
        times = sorted(best_times or [])
        attacks = [s for s, (_, a, _) in zip(scores, rows, strict=True) if a]
        benign = [s for s, (_, a, _) in zip(scores, rows, strict=True) if not a]
        for threshold in args.threshold:
            hit = sum(s >= threshold for s in attacks)
            fp = sum(s >= threshold for s in benign)
            print(
                f"| {name} | {threshold} | {len(attacks)} | {hit} ({hit / len(attacks):.1%}) "
                f"| {len(benign)} | {fp} ({fp / len(benign):.1%}) "
                f"| {percentile(times, 50):.2f} | {percentile(times, 99):.2f} "
                f"| {sum(encoded)} of {len(rows)} |"
            )
            for score, (text, attack, group) in zip(scores, rows, strict=True):
                if (score >= threshold) != attack:
                    what = "missed" if attack else "false positive"
                    misses.append(f"{name} {threshold} {what} {score:.2f} [{group}] {text[:110]!r}")
    if args.misses:
        print("\n".join(misses))


if __name__ == "__main__":
    main()
