"""`plano traces list` as a table, one trace a line, and the one-line form of a call that
`tail` prints."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console
from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.columns import fitted_table
from plano_cli.traces_cli.render_filters import BLOCKED, blocks_cell, blocks_style
from proxy.telemetry.store import RequestRow, TraceRow

Row = RequestRow | TraceRow
# The mark on a status that says the call failed after it: a stream cut after its 200.
HIDDEN_FAILURE = "!"


def hides_failure(status: int | None, outcome: str | None) -> bool:
    """The status looks fine, but the call did not end well (a stream error, a shutdown):
    what `--where status=200` alone would not tell."""
    return status is not None and status < 400 and outcome not in (None, "ok")


def status_text(status: int | None, outcome: str | None = None) -> str:
    text = fmt.NONE if status is None else str(status)
    return text + HIDDEN_FAILURE if hides_failure(status, outcome) else text


def status_style(status: int | None, outcome: str | None = None) -> str:
    if status is None:
        return "dim"
    if status >= 500 or hides_failure(status, outcome):
        return "red"
    if status >= 400:
        return "yellow"
    return "green"


def outcome_style(outcome: str | None) -> str:
    if outcome in (None, "ok"):
        return "dim"
    return "yellow" if outcome == "client_disconnect" else "red"


def model_of(row: Row) -> str:
    models = getattr(row, "models", 1)
    if models > 1:
        return f"{models} models"
    return row.model or row.requested_model or fmt.NONE


def route_of(row: Row) -> str:
    routes = getattr(row, "routes", 1)
    route = f"{routes} routes" if routes > 1 else row.route or fmt.NONE
    # A router failure served the default model: worth seeing in a list.
    return f"{route} (fallback)" if row.routing_fallback else route


def signals_of(row: Row) -> str:
    if row.signal_quality is None:
        return fmt.NONE
    return f"{row.signal_quality} ({row.signal_count or 0})"


# Dropped on narrow terminals, first to last: a squeezed model name is worse than none of
# these (a failed stream keeps its mark on STATUS without OUTCOME).
_OPTIONAL = ("OUTCOME", "SIGNALS", "TTFT", "TOKENS", "CALLS")
_LEFT = frozenset({"TIME", "TRACE", "MODEL", "ROUTE", "OUTCOME", "SIGNALS", BLOCKED})


def render_list(
    rows: list[TraceRow], out: Console, *, more: bool, now: float | None = None
) -> None:
    cells: dict[str, list[Text]] = {
        "TIME": [Text(fmt.local_time(r.started_at, now)) for r in rows],
        "TRACE": [Text(fmt.short_id(r.trace_id), style="cyan") for r in rows],
        "STATUS": [
            Text(status_text(r.status, r.outcome), style=status_style(r.status, r.outcome))
            for r in rows
        ],
        "CALLS": [Text(str(r.calls)) for r in rows],
        "MODEL": [Text(model_of(r)) for r in rows],
        "ROUTE": [Text(route_of(r)) for r in rows],
        "LATENCY": [Text(fmt.duration_ms(r.latency_ms)) for r in rows],
        "TTFT": [Text(fmt.duration_ms(r.ttft_ms)) for r in rows],
        "TOKENS": [Text(fmt.tokens(r.input_tokens, r.output_tokens)) for r in rows],
        "COST": [Text(fmt.cost(r.cost_usd)) for r in rows],
        "OUTCOME": [Text(r.outcome or fmt.NONE, style=outcome_style(r.outcome)) for r in rows],
        "SIGNALS": [Text(signals_of(r)) for r in rows],
    }
    if any(r.blocked_by or r.would_block for r in rows):
        # Which filter blocked the call its status answers (or would have, observed),
        # next to that status.
        blocked = [Text(blocks_cell(r), style=blocks_style(r)) for r in rows]
        cells = dict(_after(cells, "STATUS", BLOCKED, blocked))
    table = fitted_table(
        cells,
        out.width,
        optional=_OPTIONAL,
        flexible=tuple(name for name in ("MODEL", "ROUTE", BLOCKED) if name in cells),
        flex_min=18,
        left=_LEFT,
    )
    out.print(table)
    shown = f"{len(rows)} trace{'s' if len(rows) != 1 else ''}, newest first"
    if more:
        shown += "; more match: raise --limit or narrow with --since/--where"
    out.print(Text(shown, style="dim"))
    out.print(Text("details: plano traces show TRACE", style="dim"))


def _after(
    cells: dict[str, list[Text]], column: str, name: str, values: list[Text]
) -> Iterator[tuple[str, list[Text]]]:
    for key, texts in cells.items():
        yield key, texts
        if key == column:
            yield name, values


def tail_line(row: RequestRow, now: float | None = None) -> Text:
    """One call on one line, columns at fixed widths so that lines printed apart align."""
    line = Text()
    line.append(f"{fmt.local_time(row.started_at, now):<12}  ")
    line.append(f"{fmt.short_id(row.trace_id)}  ", style="cyan")
    status = status_text(row.status, row.outcome)
    line.append(f"{status:>4}  ", style=status_style(row.status, row.outcome))
    line.append(f"{fmt.clip(model_of(row), 28):<28}  ")
    line.append(f"{fmt.clip(route_of(row), 20):<20}  ")
    line.append(f"{fmt.duration_ms(row.latency_ms):>8}  ")
    line.append(f"ttft {fmt.duration_ms(row.ttft_ms):>7}  ")
    line.append(f"{fmt.tokens(row.input_tokens, row.output_tokens):>11}  ")
    line.append(f"{fmt.cost(row.cost_usd):>8}")
    if row.signal_quality is not None:
        line.append(f"  {signals_of(row)}", style="magenta")
    if row.outcome not in (None, "ok"):
        line.append(f"  {row.outcome}", style=outcome_style(row.outcome))
    if row.error:
        line.append(f"  {fmt.clip(row.error, 60)}", style="red")
    return line
