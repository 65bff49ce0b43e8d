"""The detail view's summary band: one trace in three lines that fit 80 columns."""

from __future__ import annotations

from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.render_list import status_style, status_text
from plano_cli.traces_cli.render_show import Glyphs, model_line, models_line
from plano_cli.traces_cli.trace_model import (
    AgentChain,
    Call,
    agent_chains,
    attempt_usage,
    trace_calls,
)
from proxy.telemetry.store import TraceDetail, TraceRow

_GAP = "  "


def summary_text(detail: TraceDetail) -> Text:
    row = detail.summary
    head = Text(fmt.short_id(detail.trace_id), style="bold cyan")
    if row is None:
        head.append(f"{_GAP}no summary yet", style="yellow")
        lines = [
            head,
            Text("the request is still running, or the gateway stopped before writing it"),
            Text(f"{len(detail.spans)} span{'s' if len(detail.spans) != 1 else ''} stored"),
        ]
    else:
        calls = trace_calls(detail)
        status = status_text(row.status, row.outcome) if row.status else "no status"
        head.append(_GAP)
        head.append(status, style=f"bold {status_style(row.status, row.outcome)}")
        head.append(_GAP)
        one = calls[0].row if len(calls) == 1 else None
        model = model_line(one, Glyphs(unicode=True)) if one is not None else models_line(calls)
        head.append(model, style="bold")
        chains = [chain for _, chain in agent_chains(detail, calls)]
        lines = [head, _routing_line(calls, row, chains), _numbers_line(row)]
    return Text("\n").join(lines)


def _routing_line(calls: list[Call], row: TraceRow, chains: list[AgentChain]) -> Text:
    line = Text()
    if len(calls) > 1:
        _field(line, "calls", str(row.calls), "bold")
    if chains:  # an agent listener's call: the orchestrator chose agents, not a route
        _field(line, "agents", _agents_text(chains[0]), "bold")
    elif row.route or row.router_backend or row.routes > 1:
        route = f"{row.routes} routes" if row.routes > 1 else row.route or "(none)"
        _field(line, "route", f"{route} via {row.router_backend or '?'}")
    else:
        line.append("not routed", style="dim")
    if row.routing_fallback:
        _field(line, "fallback", row.routing_fallback, "bold yellow")
    attempts = [a for call in calls for a in attempt_usage(call.spans)]
    failed = sum(1 for a in attempts if a.failed)
    if len(attempts) > len(calls) or failed:
        _field(line, "attempts", f"{len(attempts)} ({failed} failed)", "yellow" if failed else "")
    if row.outcome not in (None, "ok", "error"):  # an error shows in the status already
        _field(line, "outcome", row.outcome or "", "bold red")
    if row.blocked_by:
        _field(line, "blocked by", ", ".join(row.blocked_by), "bold red")
    if row.would_block:
        _field(line, "would block", f"{', '.join(row.would_block)} (observe)", "yellow")
    if row.error:
        _field(line, "error", row.error, "red")
    return line


def _agents_text(chain: AgentChain) -> str:
    names = " → ".join(step.agent_id for step in chain.agents) or "(none ran)"
    decided = chain.orchestration
    if decided is None:
        return names  # a single agent: no orchestrator was asked
    return f"{names} via {decided.backend or '?'}" + (
        f" ({decided.selection})" if decided.selection not in (None, "routed") else ""
    )


def _numbers_line(row: TraceRow) -> Text:
    line = Text()
    _field(line, "latency", fmt.duration_ms(row.latency_ms))
    _field(line, "ttft", fmt.duration_ms(row.ttft_ms))
    _field(line, "tokens", fmt.tokens(row.input_tokens, row.output_tokens))
    _field(line, "cost", fmt.cost(row.cost_usd))
    if row.signal_quality is not None:
        _field(line, "signals", f"{row.signal_quality} ({row.signal_score})")
    return line


def _field(line: Text, label: str, value: str, style: str = "") -> None:
    if line:
        line.append(_GAP)
    line.append(f"{label} ", style="dim")
    line.append(value, style=style)
