"""Every labeled routing set with every description file, with and without the domain library.

    python bench/router_eval_table.py [--only NAME ...]

The rows are what docs/benchmarks.md's eval table reports: the shared sets in ../shared/data
(CLINC150 val with its three description styles, tasks_dev), the held-out sets in tests/data,
and the restyled development sets. Each is routed by the embedded router with the full library
(task types and domains) and with the task types alone, at the config's threshold (default 0).
p50 is one `EmbeddedRouter.score` call on one prompt, encoding included, without the routing
service's thread hop (`plano route --eval` reports that one). Writes
bench/results/router_eval_table.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from proxy.config import Mode, load_config  # noqa: E402
from proxy.routing.embedded import EmbeddedRouter, RouteText  # noqa: E402
from proxy.routing.embedded.library import TASK_TYPES  # noqa: E402
from proxy.routing.evaluate import EvalReport, read_examples  # noqa: E402
from proxy.routing.routes import routes_from_config  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
TESTS = REPO / "tests" / "data"

# (name, prompts, routes, role): "tuned on" sets shaped the router; "held out" ones did not.
SETS = (
    ("clinc_shared", SHARED / "clinc150_val.jsonl", SHARED / "clinc150_routes.yaml", "tuned on"),
    (
        "clinc_first_person",
        SHARED / "clinc150_val.jsonl",
        SHARED / "clinc150_routes_first_person.yaml",
        "held out",
    ),
    (
        "clinc_terse",
        SHARED / "clinc150_val.jsonl",
        SHARED / "clinc150_routes_terse.yaml",
        "held out",
    ),
    *(
        (
            f"clinc_{style}_dev",
            SHARED / "clinc150_val.jsonl",
            TESTS / f"clinc150_routes_{style}_dev.yaml",
            "dev",
        )
        for style in ("first_person", "terse")
    ),
    ("tasks", SHARED / "tasks_dev.jsonl", SHARED / "tasks_routes.yaml", "tuned on"),
    *(
        (f"tasks_{style}", SHARED / "tasks_dev.jsonl", TESTS / f"tasks_routes_{style}.yaml", "dev")
        for style in ("first_person", "first_person_2", "terse", "terse_2")
    ),
    ("heldout", TESTS / "routing_heldout.jsonl", TESTS / "routing_heldout_routes.yaml", "held out"),
    *(
        (
            f"heldout_{style}",
            TESTS / "routing_heldout.jsonl",
            TESTS / f"routing_heldout_routes_{style}.yaml",
            "dev",
        )
        for style in ("first_person", "first_person_2", "terse", "terse_2")
    ),
    (
        "fewroutes",
        TESTS / "routing_fewroutes.jsonl",
        TESTS / "routing_fewroutes_routes.yaml",
        "held out",
    ),
    *(
        (
            f"domains_{style}",
            TESTS / "routing_domains.jsonl",
            TESTS / f"routing_domains_routes{suffix}.yaml",
            "held out",
        )
        for style, suffix in (("plain", ""), ("first_person", "_first_person"), ("terse", "_terse"))
    ),
)


def evaluate(router: EmbeddedRouter, routes_file: Path, data: Path) -> dict:
    config = load_config(routes_file, mode=Mode.VALIDATE)  # keys may be unset
    routes = tuple(RouteText(r.name, r.description, r.examples) for r in routes_from_config(config))
    threshold = config.routing.router.threshold
    report = EvalReport(routes=[r.name for r in routes])
    router.score([("user", "warm up")], routes, threshold=threshold)  # builds the index
    for example in read_examples(data):
        started = time.perf_counter()
        decision = router.score([("user", example.text)], routes, threshold=threshold)
        report.add(
            example.route,
            decision.route,
            (time.perf_counter() - started) * 1000,
            "embedded",
            False,
        )
    return {
        "in_scope": round(report.domain_accuracy * 100, 1),
        "oos_recall": None if report.oos_recall is None else round(report.oos_recall * 100, 1),
        "overall": round(report.overall_accuracy * 100, 1),
        "p50_ms": round(report.percentile(50), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of the sets to run")
    args = parser.parse_args()
    full = EmbeddedRouter.load()
    rows = []
    print("| set | role | in scope | out-of-scope recall | overall | p50 | in scope, tasks only |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, data, routes_file, role in SETS:
        if args.only and name not in args.only:
            continue
        if not (data.is_file() and routes_file.is_file()):
            print(f"skipping {name}: {data.name} or {routes_file.name} is missing", file=sys.stderr)
            continue
        # Fresh routers on the loaded encoder: a query cached by an earlier set's run of the
        # same prompts would make p50 a cache lookup.
        with_domains = evaluate(EmbeddedRouter(full.encoder), routes_file, data)
        without = evaluate(EmbeddedRouter(full.encoder, library=TASK_TYPES), routes_file, data)
        rows.append({"set": name, "role": role, "library": with_domains, "task_types": without})
        recall = with_domains["oos_recall"]
        print(
            f"| {name} | {role} | {with_domains['in_scope']}% | "
            f"{'' if recall is None else f'{recall}%'} | {with_domains['overall']}% | "
            f"{with_domains['p50_ms']} ms | {without['in_scope']}% |"
        )
    out = REPO / "bench" / "results" / "router_eval_table.json"
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
