"""The local provider's request adjustment: a named tool_choice, as llama.cpp's server takes it.

llama.cpp's server reads `tool_choice` only as "auto", "required" or "none"; the object that
names a tool (`{"type": "function", "function": {"name": ...}}`, which the Anthropic
translation also produces) it ignores with a warning, falling back to "auto". So a named
choice is sent as "required" with `tools` narrowed to the named tool: the grammar then admits
a call to that tool alone, with arguments that fit its schema, and a single call
(`parallel_tool_calls: false`), as OpenAI's forced function gives.

llama.cpp's grammar for "required" still lets the model write prose before the call, and a
135M model does so until max_tokens. When the model is served with chat_template.CHATML_TOOLS,
a forced answer ("required" or a named tool) is therefore begun with the call's opening tag
(an assistant prefill, which llama.cpp continues); and when only one call is wanted
(`parallel_tool_calls: false`, always so for a named tool) it is ended at the closing tag (a
stop string), since the grammar admits further calls and a small model keeps writing them.
"""

from __future__ import annotations

from typing import Any

from proxy.embedded.chat_template import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from proxy.embedded.gguf_files import KNOWN_MODELS


def local_request(body: dict[str, Any], model_id: str) -> dict[str, Any]:
    """`body` (an OpenAI chat request) with its tool_choice made one llama.cpp can keep."""
    choice = body.get("tool_choice")
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return body
    adjusted = body
    name = _named_tool(choice)
    if name is not None:
        named = [t for t in tools if isinstance(t, dict) and _tool_name(t) == name]
        if not named:
            return body  # a name that is no tool: nothing to narrow to, llama.cpp decides
        adjusted = {
            **body,
            "tools": named,
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    elif choice != "required":
        return body
    known = KNOWN_MODELS.get(model_id)
    if known is None or known.chat_template != "chatml-tools":
        return adjusted
    return _begin_with_a_call(adjusted)


def _begin_with_a_call(body: dict[str, Any]) -> dict[str, Any]:
    adjusted = dict(body)
    messages = body.get("messages")
    if isinstance(messages, list):
        adjusted["messages"] = [*messages, {"role": "assistant", "content": TOOL_CALL_OPEN}]
    if body.get("parallel_tool_calls") is False:
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        adjusted["stop"] = [*stops, TOOL_CALL_CLOSE]
    return adjusted


def _named_tool(choice: Any) -> str | None:
    if not isinstance(choice, dict) or choice.get("type") != "function":
        return None
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _tool_name(tool: dict[str, Any]) -> Any:
    function = tool.get("function")
    return function.get("name") if isinstance(function, dict) else None
