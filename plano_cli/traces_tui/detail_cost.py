"""The cost section: the trace's total (its calls added up), then each attempt upstream
(every call's, retries and failovers included) with its tokens and price."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.render_show import tokens_line
from plano_cli.traces_cli.trace_model import AttemptUsage, attempt_usage
from proxy.telemetry.store import TraceDetail

UNKNOWN = f"{fmt.NONE} means no price is known for the model (or no usage was reported): not $0"


def cost_view(detail: TraceDetail) -> RenderableType:
    parts: list[RenderableType] = []
    row = detail.summary
    total = Text("total ", style="dim")
    if row is None:
        total.append("not known yet (no summary)", style="yellow")
    else:
        total.append(fmt.cost(row.cost_usd), style="bold")
        if row.cost_usd is None:
            total.append("  unknown: no usage, or no price for this model", style="yellow")
        tokens = tokens_line(row)
        if tokens:
            total.append("   tokens ", style="dim")
            total.append(tokens)
    parts += [total, Text()]
    attempts = attempt_usage(detail.spans)
    if attempts:
        # Attempts, not the trace's calls: a call's retries and failovers are one each.
        parts.append(Text(f"upstream attempts ({len(attempts)})", style="bold underline"))
        parts.append(_attempts_table(attempts))
    else:
        parts.append(Text("no upstream attempts recorded (no plano(llm) spans)", style="dim"))
    parts += [Text(), Text(UNKNOWN, style="dim")]
    return Group(*parts)


def _attempts_table(attempts: list[AttemptUsage]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("MODEL", overflow="fold")
    table.add_column("OUTCOME", overflow="fold")
    for column in ("TOKENS", "INPUT", "OUTPUT", "COST"):
        table.add_column(column, justify="right", no_wrap=True)
    for i, a in enumerate(attempts, 1):
        attrs = a.span.attributes
        outcome = str(attrs.get("llm.outcome") or a.span.status_message or fmt.NONE)
        table.add_row(
            str(i),
            Text(str(attrs.get("llm.model") or fmt.NONE)),
            Text(outcome, style="red" if a.failed else "green"),
            Text(_tokens(a)),
            Text(fmt.cost(a.input_cost_usd)),
            Text(fmt.cost(a.output_cost_usd)),
            Text(fmt.cost(a.cost_usd), style="bold"),
        )
    return table


def _tokens(a: AttemptUsage) -> str:
    line = fmt.tokens(a.input_tokens, a.output_tokens)
    if a.cached_tokens:
        line += f" ({a.cached_tokens} cached)"
    return line
