"""Score a router against labeled prompts: what `plano route --eval` reports.

Labels are route names; "other" (or none) means the prompt should get no route.
Domain accuracy counts only in-scope prompts, and a prompt routed to no route counts as
wrong there; out-of-scope recall is the share of "other" prompts that got no route.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from proxy.percentiles import percentile

NO_ROUTE_LABELS = frozenset({"other", "none", ""})
NONE = "(none)"


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    route: str | None  # None: out of scope
    line: int


class EvalDataError(ValueError):
    pass


def read_examples(path: Path) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalDataError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    examples = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EvalDataError(f"{path}:{number}: not JSON: {exc.msg}") from None
        text = item.get("text") if isinstance(item, dict) else None
        label = item.get("route") if isinstance(item, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise EvalDataError(f'{path}:{number}: needs a non-empty "text"')
        if label is not None and not isinstance(label, str):
            raise EvalDataError(f'{path}:{number}: "route" must be a string or null')
        route = None if label is None or label.strip().lower() in NO_ROUTE_LABELS else label
        examples.append(Example(text, route, number))
    if not examples:
        raise EvalDataError(f"{path}: no examples")
    return examples


@dataclass(slots=True)
class EvalReport:
    routes: list[str]
    total: int = 0
    in_scope: int = 0
    in_scope_correct: int = 0
    out_of_scope: int = 0
    out_of_scope_correct: int = 0
    confusion: Counter = field(default_factory=Counter)  # (expected, predicted)
    latencies_ms: list[float] = field(default_factory=list)
    backends: Counter = field(default_factory=Counter)
    fallbacks: int = 0
    unknown_labels: Counter = field(default_factory=Counter)

    def add(
        self,
        expected: str | None,
        predicted: str | None,
        latency_ms: float,
        backend: str,
        fallback: bool,
    ) -> None:
        self.total += 1
        self.latencies_ms.append(latency_ms)
        self.backends[backend] += 1
        self.fallbacks += fallback
        if expected is not None and expected not in self.routes:
            self.unknown_labels[expected] += 1
        self.confusion[(expected or NONE, predicted or NONE)] += 1
        if expected is None:
            self.out_of_scope += 1
            self.out_of_scope_correct += predicted is None
        else:
            self.in_scope += 1
            self.in_scope_correct += predicted == expected

    @property
    def domain_accuracy(self) -> float:
        return self.in_scope_correct / self.in_scope if self.in_scope else 0.0

    @property
    def oos_recall(self) -> float | None:
        return self.out_of_scope_correct / self.out_of_scope if self.out_of_scope else None

    @property
    def overall_accuracy(self) -> float:
        correct = self.in_scope_correct + self.out_of_scope_correct
        return correct / self.total if self.total else 0.0

    def per_route(self) -> Iterator[tuple[str, int, float, float, float]]:
        """(route, support, precision, recall, f1), with (none) for out of scope."""
        for name in [*self.routes, NONE]:
            support = sum(n for (exp, _), n in self.confusion.items() if exp == name)
            predicted = sum(n for (_, pred), n in self.confusion.items() if pred == name)
            hits = self.confusion[(name, name)]
            precision = hits / predicted if predicted else 0.0
            recall = hits / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            if support or predicted:
                yield name, support, precision, recall, f1

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def as_json(self) -> dict:
        return {
            "examples": self.total,
            "domain_accuracy": round(self.domain_accuracy, 4),
            "out_of_scope_recall": None if self.oos_recall is None else round(self.oos_recall, 4),
            "overall_accuracy": round(self.overall_accuracy, 4),
            "latency_ms": {
                "p50": round(self.percentile(50), 3),
                "p90": round(self.percentile(90), 3),
                "p99": round(self.percentile(99), 3),
                "max": round(max(self.latencies_ms, default=0.0), 3),
            },
            "backends": dict(self.backends),
            "fallbacks": self.fallbacks,
            "per_route": {
                name: {
                    "support": s,
                    "precision": round(p, 4),
                    "recall": round(r, 4),
                    "f1": round(f, 4),
                }
                for name, s, p, r, f in self.per_route()
            },
            "confusion": [
                {"expected": exp, "predicted": pred, "count": n}
                for (exp, pred), n in sorted(self.confusion.items())
            ],
            "unknown_labels": dict(self.unknown_labels),
        }
