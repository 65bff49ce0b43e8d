"""The filters section: each filter call of the request in the order it ran, with its
decision (observe mode marked), latency, target agent and what it said; as `plano traces
show` draws it, from the same model, with messages and diffs whole."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from plano_cli.traces_cli.filter_model import call_filters
from plano_cli.traces_cli.render_filters import filters_table
from plano_cli.traces_cli.render_show import call_label
from plano_cli.traces_cli.trace_model import trace_calls
from proxy.telemetry.store import TraceDetail

NO_FILTERS = "no filters: no filter ran on this trace's calls"


def filters_view(detail: TraceDetail) -> RenderableType:
    calls = trace_calls(detail)
    found = call_filters(detail, calls)
    if not found:
        return Text(NO_FILTERS, style="dim")
    parts: list[RenderableType] = []
    for call, steps in found:
        label = call_label(call, len(calls)) if call is not None else ""
        if label:
            if parts:
                parts.append(Text())
            parts.append(Text(label, style="bold reverse"))
        parts.append(filters_table(steps, None))
    return Group(*parts)
