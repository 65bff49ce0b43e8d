"""`plano route --listener AGENT_LISTENER`: which agents would run, and in what order.

A dry run of the orchestrator `plano up` would build for that listener: no agent is
called. With an orchestrator LLM configured and reachable, it is asked (nothing is
pulled); otherwise the embedded router decides, offline.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from plano_cli.json_output import print_json_line
from proxy.agents.orchestrator import AgentPlan, Orchestrator, Selection
from proxy.canonical import Message, TextPart
from proxy.config.model import Config, Listener
from proxy.routing.evaluate import EvalReport, Example
from proxy.routing.setup import build_orchestration


async def run_agents(
    config: Config,
    listener: Listener,
    prompt: str | None,
    examples: list[Example] | None,
    out: Console,
    err: Console,
    as_json: bool,
    explain: bool,
    min_accuracy: float | None,
) -> int:
    service = None
    if len(listener.agents) > 1:
        service = await build_orchestration(config, listener)
    orchestrator = Orchestrator(listener, service)
    try:
        if service is not None and explain:
            for note in service.notes[:-1]:
                err.print(f"[yellow]note:[/yellow] {note}")
        if examples is not None:
            return await _evaluate(orchestrator, examples, out, err, as_json, min_accuracy)
        plan = await orchestrator.plan(_conversation(prompt or ""))
        _show(orchestrator, plan, prompt or "", out, as_json, explain)
        return 0
    finally:
        if service is not None:
            await service.close()


def _conversation(text: str) -> list[Message]:
    return [Message(role="user", content=[TextPart(text)])]


def _show(orchestrator: Orchestrator, plan: AgentPlan, prompt, out, as_json, explain) -> None:
    if as_json:
        print_json_line({"listener": orchestrator.listener.name, **plan.as_json()})
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    order = " → ".join(f"[green]{agent}[/green]" for agent in plan.agents)
    table.add_row("agents", order)
    why = {
        Selection.ROUTED: "named by the orchestrator",
        Selection.DEFAULT: "no agent fits: the default agent",
        Selection.FALLBACK: "the orchestrator failed: the default agent",
        Selection.SINGLE: "the listener's only agent: no orchestrator call",
    }[plan.selection]
    table.add_row("selection", why)
    table.add_row("backend", f"{plan.backend}  [dim]{plan.latency_ms:.1f} ms[/dim]")
    if plan.fallback:
        table.add_row("fallback", f"[red]{plan.fallback}[/red]")
    if plan.scores:
        grid = Table.grid(padding=(0, 1))
        for name, score in sorted(plan.scores.items(), key=lambda kv: kv[1], reverse=True):
            style = "green" if name in plan.agents else "dim"
            grid.add_row(f"[{style}]{name}[/{style}]", f"{score:6.3f}")
        table.add_row("scores", grid)
    if plan.detail:
        table.add_row("why", plan.detail)
    if explain:
        table.add_row("orchestrator", orchestrator.describe())
        service = orchestrator.service
        backend = service.backend if service is not None else None
        prompting = getattr(backend, "prompting", None) or getattr(
            getattr(backend, "llm", None), "prompting", None
        )
        if prompting is not None and service is not None:
            table.add_row("prompt", prompting.prompt([("user", prompt)], service.routes))
    out.print(table)


async def _evaluate(orchestrator: Orchestrator, examples, out, err, as_json, min_accuracy) -> int:
    """Labels are agent ids, or several joined by commas for a sequence; "other" means no
    agent fits, so the default agent is expected."""
    from plano_cli.route_run import check_accuracy, render_report

    labels = {orchestrator.default if e.route is None else _sequence(e.route) for e in examples}
    known = set(orchestrator.ids)
    routes = [*orchestrator.ids]
    routes += sorted(
        label for label in labels if label not in known and set(label.split(",")) <= known
    )
    report = EvalReport(routes=routes)
    for example in examples:
        plan = await orchestrator.plan(_conversation(example.text))
        expected = orchestrator.default if example.route is None else _sequence(example.route)
        report.add(
            expected,
            ",".join(plan.agents),
            plan.latency_ms,
            plan.backend,
            plan.selection is Selection.FALLBACK,
        )
    if as_json:
        print_json_line({"listener": orchestrator.listener.name, **report.as_json()})
    else:
        render_report(report, out)
    sys.stdout.flush()
    return check_accuracy(report, min_accuracy, err)


def _sequence(label: str) -> str:
    return ",".join(part.strip() for part in label.split(",") if part.strip())
