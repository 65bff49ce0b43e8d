"""`plano route --learn`: learned examples per route from the trace store, written to a file
that `plano up` loads when `routing.router.learned_routes` names it (proxy/routing/learn.py).
With --eval, the labeled set is routed before and after, with the learned prompts and
without."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from plano_cli.json_output import print_json_line
from proxy.config.model import Config
from proxy.paths import default_trace_store
from proxy.routing.evaluate import EvalReport, Example
from proxy.routing.learned import LearnedRoutes, apply_learned, write_learned
from proxy.routing.routes import routes_from_config

DEFAULT_FILE = "learned_routes.json"


def learned_path(config: Config, config_path: Path, out: Path | None) -> Path:
    """--out, else the file the config loads, else learned_routes.json beside the config."""
    if out is not None:
        return out
    if config.routing.router.learned_routes:
        return Path(config.routing.router.learned_routes).expanduser()
    return config_path.parent / DEFAULT_FILE


def store_path(config: Config, store: Path | None) -> Path:
    if store is not None:
        return store
    configured = config.tracing.store.path
    return Path(configured).expanduser() if configured else default_trace_store()


def run_learn(
    config: Config,
    config_path: Path,
    *,
    store: Path | None,
    out_file: Path | None,
    since_s: float | None,
    limit: int,
    examples: list[Example] | None,
    out: Console,
    err: Console,
    as_json: bool,
) -> int:
    from proxy.routing.embedded.router import EmbeddedRouter, RouteText
    from proxy.routing.embedded.weights import RouterModelUnavailable
    from proxy.routing.learn import learn, read_samples

    source = store_path(config, store)
    if not source.is_file():
        err.print(f"[red]error:[/red] no trace store at {source}: nothing to learn from")
        return 1
    now = time.time()
    try:
        samples = read_samples(source, since=now - since_s if since_s else 0.0, limit=limit)
    except OSError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    try:
        router = EmbeddedRouter.load(config.routing.router.model_path)
    except RouterModelUnavailable as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    threshold = config.routing.router.threshold
    routes = tuple(RouteText(r.name, r.description, r.examples) for r in routes_from_config(config))
    learned = learn(router, routes, samples, threshold=threshold, learned_at=now)
    target = learned_path(config, config_path, out_file)
    write_learned(target, learned)
    comparison = None
    if examples is not None:
        with_learned, _ = apply_learned(routes, learned)
        comparison = (
            _evaluate(router, routes, examples, threshold),
            _evaluate(router, with_learned, examples, threshold),
        )
    if as_json:
        payload = {"store": str(source), "file": str(target), **learned.as_json()}
        if comparison is not None:
            payload["before"], payload["after"] = (_figures(r) for r in comparison)
        print_json_line(payload)
    else:
        _show(learned, source, target, len(routes), comparison, out)
    return 0


def _evaluate(router, routes, examples: list[Example], threshold) -> EvalReport:
    report = EvalReport(routes=[r.name for r in routes])
    for example in examples:
        started = time.perf_counter()
        decision = router.score([("user", example.text)], routes, threshold=threshold)
        elapsed = (time.perf_counter() - started) * 1000
        report.add(example.route, decision.route, elapsed, "embedded", False)
    return report


def _figures(report: EvalReport) -> dict:
    return {
        "domain_accuracy": round(report.domain_accuracy, 4),
        "out_of_scope_recall": None if report.oos_recall is None else round(report.oos_recall, 4),
        "overall_accuracy": round(report.overall_accuracy, 4),
    }


def _show(learned: LearnedRoutes, source, target, n_routes, comparison, out: Console) -> None:
    llm = sum(r.from_llm for r in learned.routes.values())
    own = sum(r.self_trained for r in learned.routes.values())
    out.print(f"read {learned.prompts_read} stored prompts from {source}")
    out.print(
        f"learned {learned.examples} examples for {len(learned.routes)} of {n_routes} routes "
        f"({llm} labeled by the router LLM, {own} self-trained) -> {target}"
    )
    if learned.routes:
        table = Table(box=None, padding=(0, 2))
        for column in ("route", "examples", "router LLM", "self-trained"):
            table.add_column(column, justify="left" if column == "route" else "right")
        for name, route in learned.routes.items():
            table.add_row(
                name, str(len(route.examples)), str(route.from_llm), str(route.self_trained)
            )
        out.print(table)
    if comparison is not None:
        before, after = comparison
        table = Table(box=None, padding=(0, 2), title="labeled set: without -> with learned")
        for column in ("", "before", "after"):
            table.add_column(column, justify="left" if not column else "right")
        table.add_row("domain accuracy", _pct(before.domain_accuracy), _pct(after.domain_accuracy))
        table.add_row("out-of-scope recall", _pct(before.oos_recall), _pct(after.oos_recall))
        table.add_row("overall", _pct(before.overall_accuracy), _pct(after.overall_accuracy))
        out.print(table)
    out.print(
        f"[dim]to use them: `routing: {{router: {{learned_routes: {target}}}}}` in the config, "
        "then plano up[/dim]"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"
