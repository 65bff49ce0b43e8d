"""`plano traces stats` as tables: one per grouping, busiest group first. The unit is a
call (one request through the gateway): a trace of five calls counts five."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.columns import fitted_table
from proxy.telemetry.store import GroupStats


def render_stats(
    tables: dict[str, list[GroupStats]],
    total: dict[str, Any],
    out: Console,
    *,
    hidden: dict[str, int],
    since_text: str | None,
) -> None:
    count = total["count"]
    head = f"{count} call{'s' if count != 1 else ''}"
    head += f" since {since_text}" if since_text else ""
    head += (
        f", {total['errors']} failed ({fmt.percent(total['error_rate'])}),"
        f" {fmt.tokens(total['input_tokens'], total['output_tokens'])} tokens,"
        f" {fmt.cost(total['cost_usd'])}"
    )
    out.print(Text(head, style="bold"))
    for by, groups in tables.items():
        out.print()
        out.print(Text(f"by {by}", style="bold"))
        out.print(_table(by, groups, out.width))
        if hidden.get(by):
            out.print(Text(f"{hidden[by]} smaller {by}s not shown (--limit)", style="dim"))


# Dropped on narrow terminals, first to last.
_OPTIONAL = ("TTFT p95", "TTFT p50", "TOKENS IN", "TOKENS OUT")


def _table(by: str, groups: list[GroupStats], width: int) -> Table:
    key = by.upper()
    cells: dict[str, list[Text]] = {
        key: [Text(g.key if g.key is not None else "(none)") for g in groups],
        "CALLS": [Text(str(g.count)) for g in groups],
        "ERRORS": [
            Text(f"{g.errors} ({fmt.percent(g.error_rate)})", style="red" if g.errors else "")
            for g in groups
        ],
        "LAT p50": [Text(fmt.duration_ms(g.p50_latency_ms)) for g in groups],
        "LAT p95": [Text(fmt.duration_ms(g.p95_latency_ms)) for g in groups],
        "TTFT p50": [Text(fmt.duration_ms(g.p50_ttft_ms)) for g in groups],
        "TTFT p95": [Text(fmt.duration_ms(g.p95_ttft_ms)) for g in groups],
        "TOKENS IN": [Text(str(g.input_tokens)) for g in groups],
        "TOKENS OUT": [Text(str(g.output_tokens)) for g in groups],
        "COST": [Text(fmt.cost(g.cost_usd)) for g in groups],
    }
    return fitted_table(
        cells, width, optional=_OPTIONAL, flexible=(key,), flex_min=24, left=frozenset({key})
    )
