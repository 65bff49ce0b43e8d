"""The detail view's summary band: one trace in three lines that fit 80 columns."""

from __future__ import annotations

from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.render_list import status_style
from plano_cli.traces_cli.render_show import Glyphs, model_line
from plano_cli.traces_cli.trace_model import attempt_usage
from proxy.telemetry.store import RequestRow, TraceDetail

_GAP = "  "


def summary_text(detail: TraceDetail) -> Text:
    row = detail.request
    head = Text(fmt.short_id(detail.trace_id), style="bold cyan")
    if row is None:
        head.append(f"{_GAP}no summary yet", style="yellow")
        lines = [
            head,
            Text("the request is still running, or the gateway stopped before writing it"),
            Text(f"{len(detail.spans)} span{'s' if len(detail.spans) != 1 else ''} stored"),
        ]
    else:
        head.append(_GAP)
        head.append(str(row.status or "no status"), style=f"bold {status_style(row.status)}")
        head.append(_GAP)
        head.append(model_line(row, Glyphs(unicode=True)), style="bold")
        lines = [head, _routing_line(detail, row), _numbers_line(row)]
    return Text("\n").join(lines)


def _routing_line(detail: TraceDetail, row: RequestRow) -> Text:
    line = Text()
    if row.route or row.router_backend:
        _field(line, "route", f"{row.route or '(none)'} via {row.router_backend or '?'}")
    else:
        line.append("not routed", style="dim")
    if row.routing_fallback:
        _field(line, "fallback", row.routing_fallback, "bold yellow")
    attempts = attempt_usage(detail)
    failed = sum(1 for a in attempts if a.failed)
    if len(attempts) > 1 or failed:
        _field(line, "attempts", f"{len(attempts)} ({failed} failed)", "yellow" if failed else "")
    if row.error:
        _field(line, "error", row.error, "red")
    return line


def _numbers_line(row: RequestRow) -> Text:
    line = Text()
    _field(line, "latency", fmt.duration_ms(row.latency_ms))
    _field(line, "ttft", fmt.duration_ms(row.ttft_ms))
    _field(line, "tokens", fmt.tokens(row.input_tokens, row.output_tokens))
    _field(line, "cost", fmt.cost(row.cost_usd))
    if row.signal_quality is not None:
        _field(line, "signals", f"{row.signal_quality} ({row.signal_score})")
    return line


def _field(line: Text, label: str, value: str, style: str = "") -> None:
    if line:
        line.append(_GAP)
    line.append(f"{label} ", style="dim")
    line.append(value, style=style)
