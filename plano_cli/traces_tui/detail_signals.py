"""The signals section: the quality verdict, then each signal with its snippet."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from plano_cli.traces_cli.render_show import signals_table
from proxy.telemetry.store import TraceDetail

NO_SIGNALS = "no signals: none found in this conversation, or signal analysis is off"


def signals_view(detail: TraceDetail) -> RenderableType:
    parts: list[RenderableType] = []
    row = detail.summary
    if row is not None and row.signal_quality is not None:
        verdict = Text("quality ", style="dim")
        verdict.append(row.signal_quality, style="bold")
        verdict.append("  score ", style="dim")
        verdict.append(str(row.signal_score))
        verdict.append("  found ", style="dim")
        verdict.append(str(row.signal_count))
        parts += [verdict, Text()]
    if not detail.signals:
        parts.append(Text(NO_SIGNALS, style="dim"))
    else:
        parts.append(signals_table(detail.signals, snippet_width=None))
    return Group(*parts)
