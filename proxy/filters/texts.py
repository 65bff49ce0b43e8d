"""Where the message text lives in each request body a built-in guardrail sees.

One linear walk per API shape yields the text slots (a string and whose it is: system,
user, assistant or tool) and, on a copy of the body, writes rewritten text back. Only
message text is visited: model names, tool schemas, tool-call arguments, ids, images and
every other key are left as they are, and a body of an unexpected shape (a number where a
list belongs) simply has fewer slots: nothing here raises on any JSON value.

Shapes:
- openai_chat and agent: `messages[].content`, a string or parts of type `text`;
- anthropic_messages: `system` (a string or text blocks), `messages[].content` (a string,
  text blocks, and `tool_result` blocks whose content is a string or text blocks);
- openai_responses: `instructions`, `input` (a string, or items whose `content` is a
  string or `input_text` / `output_text` / `text` parts; a `function_call_output` item's
  `output` string).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

OPENAI_CHAT = "openai_chat"
ANTHROPIC_MESSAGES = "anthropic_messages"
OPENAI_RESPONSES = "openai_responses"
AGENT = "agent"
APIS = (OPENAI_CHAT, ANTHROPIC_MESSAGES, OPENAI_RESPONSES, AGENT)

SYSTEM, USER, ASSISTANT, TOOL = "system", "user", "assistant", "tool"
# What the client controls: an injection is looked for here, not in its own system prompt.
USER_CONTROLLED = frozenset({USER, TOOL})

_ROLES = {
    "system": SYSTEM,
    "developer": SYSTEM,
    "user": USER,
    "assistant": ASSISTANT,
    "model": ASSISTANT,
    "tool": TOOL,
    "function": TOOL,
}
_RESPONSES_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


@dataclass(frozen=True, slots=True)
class Slot:
    role: str  # system, user, assistant or tool
    text: str


# A slot's place: the container holding the string and the key (or index) to it.
_Place = tuple[str, Any, Any]


def api_for_path(path: str) -> str:
    """The API a request path speaks (`plano filters serve` gets only the path); an
    agent's body, or any other path, is read as OpenAI Chat."""
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/messages"):
        return ANTHROPIC_MESSAGES
    if path.endswith("/responses"):
        return OPENAI_RESPONSES
    return OPENAI_CHAT


def slots(body: Any, api: str) -> list[Slot]:
    """The message texts of `body`, in document order."""
    return [Slot(role, container[key]) for role, container, key in _places(body, api, False)]


def rewrite(body: Any, api: str, change: Callable[[Slot], str]) -> Any:
    """A copy of `body` with each slot's text replaced by `change(slot)`; the containers
    on the way to a slot are copied, everything else is shared with `body` (which is
    never modified). Returns `body` itself when nothing changed."""
    if not isinstance(body, dict):
        return body
    copy = dict(body)
    changed = False
    for role, container, key in _places(copy, api, True):
        old = container[key]
        new = change(Slot(role, old))
        if new != old:
            container[key] = new
            changed = True
    return copy if changed else body


def _places(body: Any, api: str, copy: bool) -> Iterator[_Place]:
    if not isinstance(body, dict):
        return
    if api == ANTHROPIC_MESSAGES:
        yield from _anthropic(body, copy)
    elif api == OPENAI_RESPONSES:
        yield from _responses(body, copy)
    else:
        yield from _chat(body, copy)


def _child(parent: Any, key: Any, copy: bool) -> Any:
    """parent[key]; when copying, a dict or list child is replaced by its shallow copy
    first (the parent is already a copy), so writes below it never reach the original."""
    value = parent[key]
    if copy and isinstance(value, (dict, list)):
        value = value.copy()
        parent[key] = value
    return value


def _messages(body: dict, copy: bool) -> Iterator[tuple[str, dict]]:
    """(role, message) for each message that is an object; the role is normalized."""
    if not isinstance(body.get("messages"), list):
        return
    messages = _child(body, "messages", copy)
    for i, message in enumerate(messages):
        if isinstance(message, dict):
            role = (
                _ROLES.get(message.get("role"), USER)
                if isinstance(message.get("role"), str)
                else USER
            )
            yield role, _child(messages, i, copy)


def _string_or_parts(
    role: str, holder: Any, key: Any, copy: bool, kinds: frozenset[str]
) -> Iterator[_Place]:
    """holder[key] as a string, or a list of parts of these `type`s with a `text` string."""
    value = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(value, str):
        yield role, holder, key
    elif isinstance(value, list):
        parts = _child(holder, key, copy)
        for i, part in enumerate(parts):
            # `type` may be any JSON value: a list or an object is not hashable.
            if (
                isinstance(part, dict)
                and isinstance(part.get("type"), str)
                and part["type"] in kinds
                and isinstance(part.get("text"), str)
            ):
                yield role, _child(parts, i, copy), "text"


_TEXT = frozenset({"text"})


def _chat(body: dict, copy: bool) -> Iterator[_Place]:
    for role, message in _messages(body, copy):
        yield from _string_or_parts(role, message, "content", copy, _TEXT)


def _anthropic(body: dict, copy: bool) -> Iterator[_Place]:
    yield from _string_or_parts(SYSTEM, body, "system", copy, _TEXT)
    for role, message in _messages(body, copy):
        content = message.get("content")
        if isinstance(content, str):
            yield role, message, "content"
            continue
        if not isinstance(content, list):
            continue
        blocks = _child(message, "content", copy)
        for i, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                yield role, _child(blocks, i, copy), "text"
            elif kind == "tool_result" and isinstance(block.get("content"), (str, list)):
                yield from _string_or_parts(TOOL, _child(blocks, i, copy), "content", copy, _TEXT)


def _responses(body: dict, copy: bool) -> Iterator[_Place]:
    if isinstance(body.get("instructions"), str):
        yield SYSTEM, body, "instructions"
    value = body.get("input")
    if isinstance(value, str):
        yield USER, body, "input"
        return
    if not isinstance(value, list):
        return
    items = _child(body, "input", copy)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output":
            if isinstance(item.get("output"), str):
                yield TOOL, _child(items, i, copy), "output"
            continue
        if "content" not in item:
            continue
        role = item.get("role")
        role = _ROLES.get(role, USER) if isinstance(role, str) else USER
        yield from _string_or_parts(
            role, _child(items, i, copy), "content", copy, _RESPONSES_TEXT_PARTS
        )
