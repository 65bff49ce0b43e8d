"""The filters section: each filter call of the request in the order it ran, with its
decision (observe mode marked), latency, target agent and what it said; as `plano traces
show` draws it, from the same model, with messages and diffs whole."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from plano_cli.traces_cli.filter_model import call_filters
from plano_cli.traces_cli.render_filters import filters_table
from plano_cli.traces_cli.render_show import per_call
from plano_cli.traces_cli.trace_model import trace_calls
from proxy.telemetry.store import TraceDetail

REVERSE = "bold reverse"  # a call's label, as the chain section marks it
NO_FILTERS = "no filters: no filter ran on this trace's calls"


def filters_view(detail: TraceDetail) -> RenderableType:
    calls = trace_calls(detail)
    found = call_filters(detail, calls)
    if not found:
        return Text(NO_FILTERS, style="dim")
    return Group(*per_call(found, calls, lambda steps: filters_table(steps, None), REVERSE))
