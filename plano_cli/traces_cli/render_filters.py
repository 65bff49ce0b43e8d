"""A call's filter decisions as a table, for `plano traces show` and the viewer's Filters
section: one row a filter call, in the order they ran, with what it said."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.filter_model import FilterStep
from proxy.telemetry.store import TraceRow

DETAIL_CHARS = 200  # of a message or diff in `show`; --json and the viewer have it whole


def decision_style(step: FilterStep) -> str:
    """Red for what stopped the request (or errored), yellow for what observe mode only
    recorded or fail_open let through, cyan for a changed body."""
    if step.decision == "block":
        return "yellow" if step.observed else "bold red"
    if step.decision == "error":
        return "yellow" if step.applied is False or step.observed else "bold red"
    if step.decision == "modify":
        return "yellow" if step.observed else "cyan"
    return "green"


def filter_detail(step: FilterStep, width: int | None) -> str:
    """What the filter said: a block's status and message, a change's diff, an error;
    output filters add the chunks they saw."""
    parts = []
    if step.decision == "block":
        status = f"HTTP {step.status}: " if step.status is not None else ""
        parts.append(status + (step.message or "(no message)"))
    elif step.decision == "modify" and step.diff:
        parts.append(step.diff)
    elif step.decision == "error":
        error = step.error or "(no detail)"
        if step.applied is False and not step.observed:
            error += f" (let through: {step.on_error or 'fail_open'})"
        parts.append(error)
    if step.chunks is not None:
        chunks = "chunk" if step.chunks == 1 else "chunks"
        parts.append(f"{step.chunks} {chunks}, {step.chunks_modified or 0} modified")
    text = "; ".join(parts)
    return fmt.clip(text, width) if width is not None else text


def filters_table(steps: list[FilterStep], detail_width: int | None = DETAIL_CHARS) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    targets = any(step.target for step in steps)
    columns = ["#", "DIRECTION", "FILTER", "KIND", "DECISION", "LATENCY"]
    columns += ["TARGET"] if targets else []
    for column in (*columns, "DETAIL"):
        right = column in ("#", "LATENCY")
        table.add_column(column, justify="right" if right else "left", no_wrap=column != "DETAIL")
    for step in steps:
        cells = [
            Text(str(step.position)),
            Text(step.direction),
            Text(step.filter_id, style="bold"),
            Text(step.kind or fmt.NONE),
            Text(step.label, style=decision_style(step)),
            Text(fmt.duration_ms(step.latency_ms)),
        ]
        if targets:
            cells.append(Text(step.target or fmt.NONE))
        cells.append(Text(filter_detail(step, detail_width)))
        table.add_row(*cells)
    return table


def blocks_text(row: TraceRow) -> Text:
    """The filters that blocked a call of the trace, then those that would have in
    observe mode: `blocked by injection`, `would block: injection (observe)`. Empty when
    none did."""
    text = Text()
    if row.blocked_by:
        text.append(f"blocked by {', '.join(row.blocked_by)}", style="bold red")
    if row.would_block:
        if text:
            text.append("; ")
        text.append(f"would block: {', '.join(row.would_block)} (observe)", style="yellow")
    return text


BLOCKED = "BLOCKED BY"  # the list's column, shown when a row on the page has a block


def blocks_cell(row: TraceRow) -> str:
    """`blocks_text` for a list column: the filter ids, observed ones marked."""
    return ", ".join([*row.blocked_by, *(f"{f} (observe)" for f in row.would_block)])


def blocks_style(row: TraceRow) -> str:
    return "red" if row.blocked_by else "yellow"
