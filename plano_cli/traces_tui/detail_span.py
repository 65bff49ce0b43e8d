"""The selected span in full: timing, status, every attribute (sorted) and its events."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.trace_model import PlacedSpan
from plano_cli.traces_tui.detail_values import readable


def span_panel(p: PlacedSpan) -> RenderableType:
    span = p.span
    error = span.status_code == "error"
    head = Text(span.name, style="bold red" if error else "bold")
    if span.kind:
        head.append(f"  {span.kind}", style="dim")
    timing = Text.assemble(("start ", "dim"), f"+{fmt.duration_ms(p.offset_ms)}", "  ")
    if p.duration_ms is None:
        timing.append("still open (no end recorded)", style="yellow")
    else:
        timing.append_text(Text.assemble(("took ", "dim"), fmt.duration_ms(p.duration_ms)))
    timing.append(f"  span {span.span_id}", style="dim")
    parts: list[RenderableType] = [head, timing]
    if error:
        parts.append(Text(f"error: {span.status_message or 'no message'}", style="bold red"))
    parts.append(_heading(f"attributes ({len(span.attributes)})"))
    parts.append(attribute_table(span.attributes) if span.attributes else Text("none", "dim"))
    if p.events:
        parts.append(_heading(f"events ({len(p.events)})"))
        for event in p.events:
            at = fmt.duration_ms((event.time_ns - span.start_ns) / 1e6)
            line = Text(f"+{at}  ", style="dim")
            line.append(event.name, style="bold")
            parts.append(line)
            if event.attributes:
                parts.append(attribute_table(event.attributes, indent=2))
    return Group(*parts)


def _heading(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def attribute_table(attributes: dict[str, Any], indent: int = 0) -> Table:
    grid = Table.grid(padding=(0, 2), pad_edge=False)
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key in sorted(attributes):
        grid.add_row(Text(" " * indent + key), readable(attributes[key]))
    return grid
