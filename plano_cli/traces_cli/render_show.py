"""`plano traces show` as text: summary, its calls, span waterfall, routing, agent chain,
filters, signals, messages.

The pieces the interactive viewer draws the same way (tree labels, timeline bars, attribute
values, the routing and signals tables) are public and take their width as a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rich import box
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from plano_cli.traces_cli import fmt
from plano_cli.traces_cli.filter_model import call_filters
from plano_cli.traces_cli.render_filters import blocks_text, filters_table
from plano_cli.traces_cli.render_list import (
    model_of,
    outcome_style,
    status_style,
    status_text,
)
from plano_cli.traces_cli.trace_model import (
    INBOUND,
    LLM,
    ROUTING,
    AgentChain,
    Call,
    PlacedSpan,
    agent_chains,
    attempt_usage,
    message_list,
    routing_decision,
    span_tree,
    tool_call_parts,
    trace_calls,
    trace_span_ms,
)
from proxy.telemetry.store import RequestRow, SignalRow, TraceDetail, TraceRow

BAR_WIDTH = 32
SCORE_BAR_WIDTH = 20
NAME_WIDTH = 40
_Found = TypeVar("_Found")
NOT_CAPTURED = "not captured (tracing.store.capture_messages is off, or the body was unreadable)"
MESSAGE_CHARS = 1_500  # per message, unless --full: a pasted file should not flood the view
ARGUMENT_CHARS = 200
HANDOFF_CHARS = 200  # of an agent's handoff in `show`; --json and the viewer have it whole
OTHER_ATTRIBUTES = 12  # on spans from agents, whose attributes we know nothing about

# The attributes worth a glance, per span; --json has them all. Routing scores have their
# own section, signals theirs.
KEY_ATTRIBUTES = {
    INBOUND: (
        "http.response.status_code",
        "url.path",
        "plano.api",
        "plano.listener",
        "llm.model",
        "route.selected_model",
        "llm.provider",
        "llm.is_streaming",
        "session.id",
        "plano.messages.truncated",  # the messages below were cut to the trace's budget
    ),
    ROUTING: (
        "route.name",
        "router.backend",
        "route.selected_model",
        "routing.determination_ms",
        "router.cached",
        "router.pinned",
        "router.fallback",
    ),
    LLM: (
        "llm.model",
        "llm.provider",
        "llm.outcome",
        "llm.time_to_first_token",
        "llm.time_per_output_token_ms",
        "llm.usage.prompt_tokens",
        "llm.usage.completion_tokens",
        "llm.usage.cached_input_tokens",
        "llm.usage.reasoning_tokens",
        "llm.usage.cost_usd",
    ),
}


class Glyphs:
    def __init__(self, unicode: bool):
        self.bar, self.open_bar = ("█", "░") if unicode else ("#", ".")
        self.branch, self.last, self.rail = (
            ("├─ ", "└─ ", "│  ") if unicode else ("|- ", "`- ", "|  ")
        )
        self.arrow = "→" if unicode else "->"


def render_show(detail: TraceDetail, out: Console, *, full: bool = False) -> None:
    glyphs = Glyphs("utf" in (out.encoding or "").lower())
    out.print(Text.assemble(("trace ", "bold"), (detail.trace_id, "bold cyan")))
    calls = trace_calls(detail)
    _summary(detail, calls, out, glyphs)
    if len(calls) > 1:
        _section(out, f"Calls ({len(calls)})")
        out.print(calls_table(calls, detail.summary))
    placed = span_tree(detail)
    if placed:
        _section(out, "Spans")
        _waterfall(placed, out, glyphs)
    decisions = routing_decisions(detail, calls)
    if decisions:
        _section(out, "Routing")
        for i, (label, routing) in enumerate(decisions):
            if label:
                if i:
                    out.print()
                out.print(Text(label, style="bold"))
            out.print(routing_table(routing, glyphs))
    chains = agent_chains(detail, calls)
    if chains:
        _section(out, "Chain")
        for part in per_call(chains, calls, lambda c: chain_table(c, glyphs, HANDOFF_CHARS)):
            out.print(part)
    filtered = call_filters(detail, calls)
    if filtered:
        _section(out, "Filters")
        for part in per_call(filtered, calls, filters_table):
            out.print(part)
    if detail.signals:
        _section(out, "Signals")
        out.print(signals_table(detail.signals))
    captured = [c for c in calls if c.row.request_messages or c.row.response_messages]
    if len(calls) > 1 and not captured:
        _section(out, "Messages")
        out.print(Text(NOT_CAPTURED, style="dim"))
        return
    for call in calls:
        prefix = call_label(call, len(calls))
        prefix = f"{prefix}: " if prefix else ""
        _messages(f"{prefix}Request messages", call.row.request_messages, out, glyphs, full)
        _messages(f"{prefix}Response messages", call.row.response_messages, out, glyphs, full)


def per_call(
    found: Sequence[tuple[Call | None, _Found]],
    calls: list[Call],
    render: Callable[[_Found], RenderableType],
    label_style: str = "bold",
) -> list[RenderableType]:
    """A section drawn call by call: each call's part under its label (`Call 2 of 5`) when
    the trace has several calls, a blank line between two."""
    parts: list[RenderableType] = []
    for call, item in found:
        label = call_label(call, len(calls)) if call is not None else ""
        if label:
            if parts:
                parts.append(Text())
            parts.append(Text(label, style=label_style))
        parts.append(render(item))
    return parts


def call_label(call: Call, count: int) -> str:
    """How a call is named where a trace has several: `Call 2 of 5`; empty for one."""
    return f"Call {call.number} of {count}" if count > 1 else ""


def routing_decisions(detail: TraceDetail, calls: list[Call]) -> list[tuple[str, dict[str, Any]]]:
    """Each routed call's decision, labelled when the trace has several calls. A trace
    whose calls are not stored yet still shows the routing its spans recorded."""
    if not calls:
        routing = routing_decision(detail.spans, None)
        return [] if routing is None else [("", routing)]
    found = []
    for call in calls:
        routing = routing_decision(call.spans, call.row)
        if routing is not None:
            found.append((call_label(call, len(calls)), routing))
    return found


def _section(out: Console, title: str) -> None:
    out.print()
    out.print(Text(title, style="bold underline"))


def _summary(detail: TraceDetail, calls: list[Call], out: Console, glyphs: Glyphs) -> None:
    row = detail.summary
    if row is None:
        out.print(
            Text(
                "no summary yet: the request is still running, or the gateway stopped before "
                "writing it; its spans follow",
                style="yellow",
            )
        )
        return
    one = calls[0].row if len(calls) == 1 else None
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()

    def add(label: str, value: str | Text | None) -> None:
        if value is not None and value != "":
            grid.add_row(label, value if isinstance(value, Text) else Text(value))

    add("time", fmt.full_local_time(row.started_at))
    if one is None:
        add("calls", f"{row.calls} (each under Calls)")
    add("request", " ".join(p for p in (row.api, row.path) if p))
    add("listener", row.listener)
    if one is not None:
        add("request id", one.request_id)
    add("model", model_line(one, glyphs) if one is not None else models_line(calls))
    if row.route or row.router_backend or row.routes > 1:
        route = f"{row.routes} routes" if row.routes > 1 else row.route or "(none)"
        add("route", f"{route} via {row.router_backend or '?'}")
    add("status", status_line(row))
    add("filters", blocks_text(row) or None)
    if row.outcome not in (None, "ok"):
        add("outcome", outcome_line(row))
    latency = fmt.duration_ms(row.latency_ms)
    add("latency", f"{latency}, first token after {fmt.duration_ms(row.ttft_ms)}")
    add("tokens", tokens_line(row))
    add("cost", _cost_line(calls, row))
    if one is not None:
        attempts = attempt_usage(calls[0].spans)
        failed = sum(1 for a in attempts if a.failed)
        if len(attempts) > 1 or failed:
            add("attempts", f"{len(attempts)} ({failed} failed)")
    add("stream", "yes" if row.stream else "no")
    add("session", row.session)
    if row.signal_quality is not None:
        add("signals", f"{row.signal_quality}, score {row.signal_score}, {row.signal_count} found")
    out.print(grid)


def status_line(row: RequestRow | TraceRow) -> Text:
    """The status (the worst of a trace's calls), marked when the outcome says the call
    failed after it, with the error."""
    status = Text(
        status_text(row.status, row.outcome) if row.status else "no status",
        style=status_style(row.status, row.outcome),
    )
    if row.error:
        status.append(f"  {row.error}", style="red")
    return status


OUTCOME_MEANING = {
    "error": "answered with an error status",
    "stream_error": "the stream failed after its status was sent",
    "client_disconnect": "the client went away before the end",
    "shutdown": "cut by the gateway's shutdown",
}


def outcome_line(row: RequestRow | TraceRow) -> Text:
    outcome = row.outcome or fmt.NONE
    text = Text(outcome, style=outcome_style(row.outcome))
    meaning = OUTCOME_MEANING.get(outcome)
    if meaning:
        text.append(f" ({meaning})", style="dim")
    return text


def model_line(row: RequestRow | TraceRow, glyphs: Glyphs) -> str:
    answered = row.model or fmt.NONE
    if row.requested_model and row.requested_model != row.model:
        answered = f"{row.requested_model} {glyphs.arrow} {answered}"
    return f"{answered} ({row.provider})" if row.provider else answered


def models_line(calls: list[Call]) -> str:
    """The models a trace's calls used: each once, in the order first used."""
    models = list(dict.fromkeys(model_of(c.row) for c in calls))
    if len(models) == 1:
        return models[0]
    return f"{len(models)} models: {', '.join(models)}"


def calls_table(calls: list[Call], trace: TraceRow | None) -> Table:
    """One row a call: when it started in the trace, model, status and outcome, latency,
    TTFT, tokens and cost."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for column in ("#", "START", "MODEL", "STATUS", "OUTCOME", "LATENCY", "TTFT", "TOKENS"):
        left = column in ("MODEL", "OUTCOME")
        table.add_column(column, justify="left" if left else "right", no_wrap=not left)
    table.add_column("COST", justify="right", no_wrap=True)
    origin = trace.started_at if trace is not None else calls[0].row.started_at
    for call in calls:
        row = call.row
        table.add_row(
            str(call.number),
            "+" + fmt.duration_ms((row.started_at - origin) * 1000),
            Text(model_of(row)),
            Text(status_text(row.status, row.outcome), style=status_style(row.status, row.outcome)),
            Text(row.outcome or fmt.NONE, style=outcome_style(row.outcome)),
            fmt.duration_ms(row.latency_ms),
            fmt.duration_ms(row.ttft_ms),
            fmt.tokens(row.input_tokens, row.output_tokens),
            fmt.cost(row.cost_usd),
        )
    return table


def tokens_line(row: RequestRow | TraceRow) -> str | None:
    if row.input_tokens is None and row.output_tokens is None:
        return None
    line = f"{row.input_tokens or 0} in, {row.output_tokens or 0} out"
    extras = [
        f"{n} {label}"
        for n, label in ((row.cached_tokens, "cached"), (row.reasoning_tokens, "reasoning"))
        if n
    ]
    return line + (f" ({', '.join(extras)})" if extras else "")


def _cost_line(calls: list[Call], row: TraceRow) -> str:
    if row.cost_usd is None:
        return "unknown (no usage or no price for this model)"
    line = fmt.cost(row.cost_usd)
    unpriced = sum(1 for c in calls if c.row.cost_usd is None)
    if len(calls) > 1:
        return line + (f" ({unpriced} of {len(calls)} calls without a price)" if unpriced else "")
    # The answering call's split, when the gateway priced it.
    for attempt in reversed(attempt_usage(calls[0].spans)):
        prompt, completion = attempt.input_cost_usd, attempt.output_cost_usd
        if prompt is not None and completion is not None:
            return f"{line} (input {fmt.cost(prompt)}, output {fmt.cost(completion)})"
    return line


def _waterfall(placed: list[PlacedSpan], out: Console, glyphs: Glyphs) -> None:
    total = trace_span_ms(placed)
    labels = [tree_label(p, glyphs) for p in placed]
    name_width = min(NAME_WIDTH, max(len(label) for label in labels))
    header = f"{'':<{name_width}}  {'start':>9}  {'duration':>9}  "
    out.print(Text(header + timeline_scale(total), style="dim"))
    for p, label in zip(placed, labels, strict=True):
        line = Text(f"{fmt.clip_label(label, name_width):<{name_width}}  ")
        line.append(f"{'+' + fmt.duration_ms(p.offset_ms):>9}  ", style="dim")
        line.append(f"{fmt.duration_ms(p.duration_ms):>9}  ")
        error = p.span.status_code == "error"
        line.append(timeline_bar(p, total, glyphs), style="red" if error else "blue")
        if error:
            line.append(f"  {p.span.status_message or 'error'}", style="red")
        out.print(line, no_wrap=True, overflow="ellipsis")
        indent = 3 * (p.depth + 1)
        attributes = _key_attributes(p.span.name, p.span.attributes)
        if attributes:
            out.print(Padding(attributes, (0, 0, 0, indent), expand=False))
        for event in p.events:
            if event.name.startswith("signal."):
                continue  # listed under Signals
            offset = (event.time_ns - p.span.start_ns) / 1e6
            text = Text(f"event {event.name} at +{fmt.duration_ms(offset)}", style="dim")
            out.print(Padding(text, (0, 0, 0, indent), expand=False))


def tree_label(p: PlacedSpan, glyphs: Glyphs) -> str:
    if p.depth == 0:
        return p.span.name
    rails = "".join("   " if last else glyphs.rail for last in p.ancestors_last)
    return rails + (glyphs.last if p.last else glyphs.branch) + p.span.name


def timeline_scale(total: float, width: int = BAR_WIDTH) -> str:
    """The ruler above the bars: 0 at the left, the trace's duration at the right."""
    end = fmt.duration_ms(total)
    return "0" + " " * (width - 2 - len(end)) + end


def timeline_bar(p: PlacedSpan, total: float, glyphs: Glyphs, width: int = BAR_WIDTH) -> str:
    start = min(width - 1, int(p.offset_ms / total * width)) if total > 0 else 0
    if p.duration_ms is None:  # still open: drawn to the end, in the lighter shade
        return " " * start + glyphs.open_bar * (width - start)
    if total <= 0:
        return glyphs.bar
    length = max(1, round(p.duration_ms / total * width))
    return " " * start + glyphs.bar * min(length, width - start)


def _key_attributes(name: str, attributes: dict[str, Any]) -> Text:
    keys = KEY_ATTRIBUTES.get(name)
    if keys is None:
        keys = tuple(attributes)[:OTHER_ATTRIBUTES]
    text = Text(style="dim")
    for key in keys:
        if key in attributes:
            if text:
                text.append("  ")
            text.append(f"{key}=")
            text.append(attribute_value(attributes[key]), style="default")
    hidden = len(attributes) - OTHER_ATTRIBUTES
    if name not in KEY_ATTRIBUTES and hidden > 0:
        text.append(f"  …{hidden} more (--json)")
    return text


def attribute_value(value: Any, width: int | None = 80) -> str:
    """An attribute as a person reads it; clipped to one line of `width` unless None."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value == int(value) or abs(value) >= 1000:
            return f"{value:.0f}"
        # Milliseconds read to the hundredth; costs and scores need their small digits.
        return f"{value:.2f}".rstrip("0").rstrip(".") if abs(value) >= 1 else f"{value:.4g}"
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    return value if width is None else fmt.clip(value, width)


def routing_table(routing: dict[str, Any], glyphs: Glyphs) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    backend = routing["backend"] or "?"
    if routing["determination_ms"] is not None:
        backend += f" ({fmt.duration_ms(routing['determination_ms'])})"
    flags = [f for f in ("cached", "pinned", "escalated") if routing.get(f)]
    if flags:
        backend += f", {', '.join(flags)}"
    grid.add_row("backend", Text(backend))
    route = routing["route"] or "(none: no route matched)"
    if routing["selected_model"]:
        route += f" {glyphs.arrow} {routing['selected_model']}"
    grid.add_row("route", Text(route))
    if routing["models"]:
        grid.add_row("candidates", Text(", ".join(map(str, routing["models"]))))
    fallback = routing["fallback"]
    grid.add_row("fallback", Text(fallback or "no", style="yellow" if fallback else ""))
    scores = routing["scores"]
    if scores:
        top = max(abs(v) for v in scores.values()) or 1.0
        width = max(len(k) for k in scores)
        lines = Text()
        for i, (name, score) in enumerate(scores.items()):
            if i:
                lines.append("\n")
            bar = glyphs.bar * max(1, round(abs(score) / top * SCORE_BAR_WIDTH))
            style = "bold" if name == routing["route"] else ""
            lines.append(f"{name:<{width}}  {score:7.3f}  ", style=style)
            lines.append(bar, style="blue")
        grid.add_row("scores", lines)
    return grid


def chain_table(chain: AgentChain, glyphs: Glyphs, handoff_width: int | None) -> Table:
    """The orchestrator's decision, then each agent in the order it ran: its outcome,
    latency and the answer it handed to the next one."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    decided = chain.orchestration
    if decided is None:
        grid.add_row("orchestrator", Text("none: the listener has one agent"))
    else:
        backend = f"{decided.backend or '?'} ({fmt.duration_ms(decided.latency_ms)})"
        if decided.selection:
            backend += f", {decided.selection}"
        grid.add_row("orchestrator", Text(backend))
        arrow = f" {glyphs.arrow} "
        grid.add_row("selected", Text(arrow.join(decided.agents) or fmt.NONE))
        fallback = decided.fallback
        grid.add_row("fallback", Text(fallback or "no", style="yellow" if fallback else ""))
    for step in chain.agents:
        line = Text.assemble((step.agent_id, "bold"), "  ")
        line.append(step.outcome, style="red" if step.failed else "green")
        line.append(f"  {fmt.duration_ms(step.latency_ms)}")
        if step.failed and step.detail:
            line.append(f"  {step.detail}", style="red")
        if step.handoff is not None:
            handoff = attribute_value(step.handoff, handoff_width)
            line.append("\nhandoff ", style="dim").append(handoff)
        elif step.last and not step.failed:
            line.append("\nanswered the client", style="dim")
        elif not step.failed:
            line.append("\nhandoff not captured", style="dim")
        grid.add_row(f"agent {step.position}", line)
    return grid


def signals_table(signals: list[SignalRow], snippet_width: int | None = 80) -> Table:
    """One row a signal; snippets clipped to `snippet_width`, or wrapped whole if None."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for column in ("TYPE", "GROUP", "MSG", "CONF", "SNIPPET"):
        table.add_column(column, justify="right" if column in ("MSG", "CONF") else "left")
    for s in signals:
        snippet = s.snippet or "(not captured)"
        if s.snippet and snippet_width is not None:
            snippet = fmt.clip(s.snippet, snippet_width)
        table.add_row(
            Text(s.type),
            Text(s.group or fmt.NONE),
            fmt.NONE if s.message_index is None else str(s.message_index),
            fmt.NONE if s.confidence is None else f"{s.confidence:.2f}",
            Text(snippet),
        )
    return table


def _messages(title: str, messages: Any, out: Console, glyphs: Glyphs, full: bool) -> None:
    _section(out, title)
    if messages is None:
        out.print(Text(NOT_CAPTURED, style="dim"))
        return
    for i, message in enumerate(message_list(messages)):
        role = str(message.get("role") or "?")
        head = Text(f"[{i}] ", style="dim")
        head.append(role, style=ROLE_STYLES.get(role, "bold"))
        for key in ("name", "tool_call_id"):
            if message.get(key):
                head.append(f"  {key}={message[key]}", style="dim")
        out.print(head)
        content = _content_text(message.get("content"))
        if content:
            out.print(
                Padding(Text(_clip_block(content, MESSAGE_CHARS, full)), (0, 0, 0, 4), expand=False)
            )
        for call in message.get("tool_calls") or ():
            out.print(Padding(_tool_call(call, glyphs, full), (0, 0, 0, 4), expand=False))


ROLE_STYLES = {
    "system": "bold magenta",
    "user": "bold green",
    "assistant": "bold blue",
    "tool": "bold yellow",
}


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return json.dumps(content, ensure_ascii=False, indent=2)


def _tool_call(call: Any, glyphs: Glyphs, full: bool) -> Text:
    name, arguments = tool_call_parts(call)
    text = Text(f"{glyphs.arrow} tool call ", style="dim")
    text.append(name, style="bold yellow")
    text.append(f"({_clip_block(arguments, ARGUMENT_CHARS, full)})")
    return text


def _clip_block(text: str, limit: int, full: bool) -> str:
    if full or len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters: --full or --json)"
