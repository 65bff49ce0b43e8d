"""The captured request and response messages of each call, one block a message: role,
content wrapped, tool calls with their arguments as indented JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from plano_cli.traces_cli.render_list import model_of
from plano_cli.traces_cli.render_show import NOT_CAPTURED, ROLE_STYLES, call_label
from plano_cli.traces_cli.trace_model import message_list, tool_call_parts, trace_calls
from plano_cli.traces_tui.detail_values import json_text
from proxy.telemetry.store import RequestRow, TraceDetail

INDENT = 2
# Content parts that are text under another name (Responses API, Anthropic).
TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def messages_view(detail: TraceDetail) -> RenderableType:
    """Each call's request and response messages; under a heading per call when the
    trace has several."""
    calls = trace_calls(detail)
    if not calls:
        return Text("not captured yet: messages are stored with the request's summary", "dim")
    if len(calls) > 1 and not any(c.row.request_messages or c.row.response_messages for c in calls):
        return Text(NOT_CAPTURED, style="dim")  # once, not once a call
    blocks: list[RenderableType] = []
    for call in calls:
        label = call_label(call, len(calls))
        if label:
            if blocks:
                blocks.append(Text())
            heading = Text(label, style="bold reverse")
            heading.append(f"  {model_of(call.row)}", style="bold")
            blocks.append(heading)
        blocks.append(_call_messages(call.row))
    return Group(*blocks)


def _call_messages(row: RequestRow) -> RenderableType:
    blocks: list[RenderableType] = []
    for title, messages in (("Request", row.request_messages), ("Response", row.response_messages)):
        if blocks:
            blocks.append(Text())
        listed = message_list(messages)
        count = "" if messages is None else f" ({len(listed)})"
        blocks.append(Text(f"{title} messages{count}", style="bold underline"))
        if messages is None:
            blocks.append(Text(NOT_CAPTURED, style="dim"))
        elif not listed:
            blocks.append(Text("none", style="dim"))
        for i, message in enumerate(listed):
            blocks.append(_message(i, message))
    return Group(*blocks)


def _message(index: int, message: dict[str, Any]) -> RenderableType:
    role = str(message.get("role") or message.get("type") or "?")
    head = Text(f"[{index}] ", style="dim")
    head.append(role, style=ROLE_STYLES.get(role, "bold"))
    for key in ("name", "tool_call_id"):
        if message.get(key):
            head.append(f"  {key}={message[key]}", style="dim")
    body: list[RenderableType] = list(_content(message.get("content")))
    for call in message.get("tool_calls") or ():
        body.extend(_tool_call(*tool_call_parts(call)))
    if message.get("type") == "function_call":  # a Responses API item, not a message
        body.extend(_tool_call(str(message.get("name") or "?"), message.get("arguments")))
    if not body:
        body.append(Text("(empty)", style="dim"))
    return Group(head, Padding(Group(*body), (0, 0, 0, INDENT)))


def _content(content: Any) -> list[RenderableType]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        return [json_text(json.dumps(content, ensure_ascii=False, default=str))]
    out: list[RenderableType] = []
    for part in content:
        out.extend(_part(part))
    return out


def _part(part: Any) -> list[RenderableType]:
    if isinstance(part, str):
        return [Text(part)]
    if not isinstance(part, dict):
        return [json_text(json.dumps(part, ensure_ascii=False, default=str))]
    kind = part.get("type")
    if kind in TEXT_PARTS and isinstance(part.get("text"), str):
        return [Text(part["text"])]
    if kind == "tool_use":  # Anthropic's tool call
        return _tool_call(str(part.get("name") or "?"), part.get("input"))
    if kind == "tool_result":
        head = Text(f"tool result {part.get('tool_use_id') or ''}".rstrip(), style="bold yellow")
        return [head, Padding(Group(*_content(part.get("content"))), (0, 0, 0, INDENT))]
    if isinstance(kind, str) and ("image" in kind or "audio" in kind or kind == "file"):
        return [Text(f"({kind}, not stored)", style="dim")]
    return [json_text(json.dumps(part, ensure_ascii=False, default=str))]


def _tool_call(name: str, arguments: Any) -> list[RenderableType]:
    head = Text("→ tool call ", style="dim")
    head.append(name, style="bold yellow")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:  # a model can write broken JSON: shown as it wrote it
            return [head, Padding(Text(arguments), (0, 0, 0, INDENT))]
    if arguments is None:
        return [head]
    document = json.dumps(arguments, ensure_ascii=False, default=str)
    return [head, Padding(json_text(document), (0, 0, 0, INDENT))]
