"""The work behind `plano route`: build the router, run it, render what it decided."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from plano_cli.json_output import print_json_line
from proxy.config import Mode, check_file
from proxy.config.model import Config, ListenerType
from proxy.routing.evaluate import NONE, EvalDataError, EvalReport, read_examples
from proxy.routing.routes import routes_from_config
from proxy.routing.service import RoutingDecision, RoutingService, decision_payload
from proxy.routing.setup import RouterSetupError, build_routing

_BAR = 24


def run(path: Path, **options) -> int:
    """The keyword options of _run."""
    # Start-up notes are ours to print (with --explain), not the logging module's.
    routing_log = logging.getLogger("plano.routing")
    level = routing_log.level
    routing_log.setLevel(logging.ERROR)
    try:
        return _run(path, **options)
    finally:
        routing_log.setLevel(level)


def _run(
    path: Path,
    *,
    prompt: str | None,
    eval_file: Path | None,
    lint: bool,
    as_json: bool,
    explain: bool,
    min_accuracy: float | None,
    backend: str | None,
    threshold: float | None,
    listener: str | None = None,
    learn: tuple | None = None,  # (store, out file, since seconds, limit)
) -> int:
    out = Console(highlight=False)
    # Error lines stay whole: scripts and tests grep them.
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    config = _load(path, err)
    if config is None:
        return 1
    agent_listener = None
    if listener is not None:
        agent_listener = _agent_listener(config, listener, err)
        if agent_listener is False:
            return 1
    if agent_listener is None and not config.routes and not lint:
        err.print(f"[red]error:[/red] {path} has no routing_preferences: nothing to route on")
        return 1
    settings = dataclasses.replace(
        config.routing.router,
        backend=backend or config.routing.router.backend,
        threshold=threshold if threshold is not None else config.routing.router.threshold,
        pull=False,  # a dry run never downloads a gigabyte
        cache_size=0 if eval_file else config.routing.router.cache_size,
    )
    config = dataclasses.replace(
        config, routing=dataclasses.replace(config.routing, router=settings)
    )
    if lint:
        from plano_cli.route_lint import run_lint

        return run_lint(config, path, out, as_json)
    if learn is not None:
        from plano_cli.route_learn import run_learn

        store, out_file, since_s, limit = learn
        try:
            examples = read_examples(eval_file) if eval_file is not None else None
        except EvalDataError as exc:
            err.print(f"[red]error:[/red] {exc}")
            return 2
        return run_learn(
            config,
            path,
            store=store,
            out_file=out_file,
            since_s=since_s,
            limit=limit,
            examples=examples,
            out=out,
            err=err,
            as_json=as_json,
        )
    try:
        if agent_listener is not None:
            from plano_cli.route_agents import run_agents

            examples = read_examples(eval_file) if eval_file is not None else None
            return asyncio.run(
                run_agents(
                    config,
                    agent_listener,
                    prompt,
                    examples,
                    out,
                    err,
                    as_json,
                    explain,
                    min_accuracy,
                )
            )
        return asyncio.run(
            _run_router(
                config, prompt, eval_file, out, err, as_json, explain, min_accuracy, backend
            )
        )
    except RouterSetupError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    except EvalDataError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2


def _agent_listener(config: Config, name: str, err: Console):
    """The agent listener named NAME; None for the model listener (routing as usual);
    False when there is no such listener (the error is printed)."""
    found = next((lst for lst in config.listeners if lst.name == name), None)
    if found is None:
        names = ", ".join(lst.name for lst in config.listeners) or "none"
        err.print(f"[red]error:[/red] no listener named {name!r} (listeners: {names})")
        return False
    if found.type is ListenerType.AGENT:
        return found
    if found.type is ListenerType.MODEL:
        return None
    err.print(f"[red]error:[/red] listener {name!r} is a {found.type.value} listener")
    return False


def _load(path: Path, err: Console) -> Config | None:
    from plano_cli.problem_output import print_result

    try:
        result = check_file(path, mode=Mode.VALIDATE)  # keys may be unset: nothing is called
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error:[/red] {path}: {getattr(exc, 'strerror', None) or exc}")
        return None
    if not result.ok or result.config is None:
        print_result(result, err=True)
        return None
    return result.config


async def _run_router(
    config, prompt, eval_file, out, err, as_json, explain, min_accuracy, backend_asked
) -> int:
    examples = read_examples(eval_file) if eval_file is not None else None  # fail fast
    service = await build_routing(config)
    try:
        # Notes matter when they explain a surprise: a backend asked for but not used.
        if explain or (backend_asked and service.backend.name != backend_asked):
            for note in service.notes[:-1]:
                err.print(f"[yellow]note:[/yellow] {note}")
        if examples is not None:
            return await _evaluate(service, examples, out, err, as_json, min_accuracy)
        decision = await service.decide([("user", prompt)])
        _show_decision(config, service, decision, prompt, out, as_json, explain)
        return 0
    finally:
        await service.close()


def _show_decision(config, service, decision: RoutingDecision, prompt, out, as_json, explain):
    default = config.default_provider.model if config.default_provider else None
    model = decision.models[0] if decision.models else default
    if as_json:
        print_json_line(decision_payload(decision, default))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if decision.route:
        table.add_row("route", f"[green]{decision.route}[/green]")
        table.add_row("models", ", ".join(decision.models))
    else:
        table.add_row("route", "[yellow](none)[/yellow]")
        table.add_row("model", f"{model or '(no default model)'} [dim](the default)[/dim]")
    table.add_row("backend", f"{decision.backend}  [dim]{decision.latency_ms:.1f} ms[/dim]")
    if decision.fallback:
        table.add_row("fallback", f"[red]{decision.fallback}[/red]")
    if decision.scores:
        table.add_row("scores", _score_table(decision))
    if explain:
        table.add_row("why", decision.detail or "")
        table.add_row("router", service.backend.describe())
        prompting = getattr(service.backend, "prompting", None) or getattr(
            getattr(service.backend, "llm", None), "prompting", None
        )
        if prompting is not None:
            routes = routes_from_config(config)
            table.add_row("prompt", prompting.prompt([("user", prompt)], routes))
    out.print(table)


def _score_table(decision: RoutingDecision) -> Table:
    scores = sorted(decision.scores.items(), key=lambda kv: kv[1], reverse=True)
    top = max((s for _, s in scores), default=1.0) or 1.0
    grid = Table.grid(padding=(0, 1))
    for name, score in scores:
        width = max(0, int(_BAR * max(score, 0) / top)) if top > 0 else 0
        style = "green" if name == decision.route else "dim"
        grid.add_row(name, f"{score:6.3f}", f"[{style}]{'█' * width}[/{style}]")
    return grid


async def _evaluate(service: RoutingService, examples, out, err, as_json, min_accuracy) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    report = EvalReport(routes=[r.name for r in service.routes])
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task("routing", total=len(examples))
        for example in examples:
            decision = await service.decide([("user", example.text)])
            report.add(
                example.route,
                decision.route,
                decision.latency_ms,
                decision.backend,
                decision.fallback is not None,
            )
            progress.advance(task)
    if as_json:
        print_json_line(report.as_json())
    else:
        render_report(report, out)
    return check_accuracy(report, min_accuracy, err)


def check_accuracy(report: EvalReport, min_accuracy: float | None, err: Console) -> int:
    """The exit code of an eval: 1 below --min-accuracy (0.85 or 85)."""
    if min_accuracy is not None:
        wanted = min_accuracy / 100 if min_accuracy > 1 else min_accuracy
        if report.domain_accuracy < wanted:
            err.print(
                f"[red]domain accuracy {report.domain_accuracy:.1%} is below "
                f"--min-accuracy {wanted:.1%}[/red]"
            )
            return 1
    return 0


def render_report(report: EvalReport, out: Console) -> None:
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "examples",
        f"{report.total} ({report.in_scope} in scope, {report.out_of_scope} out of scope)",
    )
    summary.add_row("domain accuracy", f"{report.domain_accuracy:.1%}")
    if report.oos_recall is not None:
        summary.add_row("out-of-scope recall", f"{report.oos_recall:.1%}")
    summary.add_row("overall accuracy", f"{report.overall_accuracy:.1%}")
    summary.add_row(
        "latency",
        f"p50 {report.percentile(50):.2f} ms  p90 {report.percentile(90):.2f} ms  "
        f"p99 {report.percentile(99):.2f} ms",
    )
    summary.add_row("backends", ", ".join(f"{k} {v}" for k, v in report.backends.items()))
    if report.fallbacks:
        summary.add_row("fallbacks", f"[red]{report.fallbacks}[/red]")
    if report.unknown_labels:
        summary.add_row(
            "unknown labels",
            "[yellow]" + ", ".join(sorted(report.unknown_labels)) + "[/yellow] "
            "(not routes in the config)",
        )
    out.print(summary)

    per_route = Table(title="per route", title_justify="left")
    for column in ("route", "support", "precision", "recall", "f1"):
        per_route.add_column(column, justify="left" if column == "route" else "right")
    for name, support, precision, recall, f1 in report.per_route():
        per_route.add_row(name, str(support), f"{precision:.1%}", f"{recall:.1%}", f"{f1:.1%}")
    out.print(per_route)

    labels = [name for name, *_ in report.per_route()]
    confusion = Table(title="confusion (rows: expected, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for index in range(len(labels)):
        confusion.add_column(str(index + 1), justify="right")
    for index, expected in enumerate(labels):
        cells = []
        for predicted in labels:
            count = report.confusion[(expected, predicted)]
            text = str(count) if count else "[dim]·[/dim]"
            cells.append(f"[bold]{text}[/bold]" if expected == predicted and count else text)
        confusion.add_row(f"{index + 1} {expected}", *cells)
    out.print(confusion)
    if NONE in labels:
        out.print(f"[dim]{NONE}: no route, the request keeps the default model[/dim]")
