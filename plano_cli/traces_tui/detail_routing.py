"""The routing section: the router's decision, its scores and any fallback."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from plano_cli.traces_cli.render_show import Glyphs, routing_decisions, routing_table
from plano_cli.traces_cli.trace_model import trace_calls
from proxy.telemetry.store import TraceDetail

NOT_ROUTED = "not routed: the request named its model, or no router is configured"


def routing_view(detail: TraceDetail) -> RenderableType:
    """Each routed call's decision; headed by its call when the trace has several."""
    decisions = routing_decisions(detail, trace_calls(detail))
    if not decisions:
        return Text(NOT_ROUTED, style="dim")
    parts: list[RenderableType] = []
    for label, routing in decisions:
        if label:
            if parts:
                parts.append(Text())
            parts.append(Text(label, style="bold reverse"))
        parts.append(_decision(routing))
    return Group(*parts)


def _decision(routing: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = []
    if routing["fallback"]:
        # A fallback means the router did not decide: the default model answered.
        banner = Text("⚠ the router fell back: ", style="bold yellow")
        banner.append(str(routing["fallback"]), style="bold reverse yellow")
        parts += [banner, Text()]
    parts.append(routing_table(routing, Glyphs(unicode=True)))
    # The table names these only when set; here "no" is worth reading too.
    flags = Text()
    for key in ("cached", "pinned"):
        if routing[key] is not None:
            flags.append(f"{key} ", style="dim")
            flags.append(f"{'yes' if routing[key] else 'no'}  ")
    if flags:
        parts += [Text(), flags]
    return Group(*parts)
