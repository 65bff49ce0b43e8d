"""The calls section: every call of the trace (an agent's run makes many), one line each:
when it started in the trace, model, status and outcome, latency, TTFT, tokens and cost."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from plano_cli.traces_cli.render_show import calls_table
from plano_cli.traces_cli.trace_model import trace_calls
from proxy.telemetry.store import TraceDetail

STATUS_AND_OUTCOME = (
    "STATUS is what the client got in its headers; OUTCOME how the call ended "
    "(a ! on a status: it failed after it)"
)


def calls_view(detail: TraceDetail) -> RenderableType:
    calls = trace_calls(detail)
    if not calls:
        return Text("no calls stored yet: only spans have arrived", style="dim")
    count = f"{len(calls)} call{'s' if len(calls) != 1 else ''}"
    return Group(
        Text(count, style="bold underline"),
        calls_table(calls, detail.summary),
        Text(),
        Text(STATUS_AND_OUTCOME, style="dim"),
    )
