"""Router LLM prompts and answers, in upstream Plano's formats.

Arch-Router models were trained on the legacy prompt and answer `{"route": "name"}`, with
"other" for no route. Plano-Orchestrator models get the orchestrator-v1 prompt and answer
`{"route": ["name", ...]}`, an empty list for no route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from enum import Enum

from proxy.routing.conversation import Turn
from proxy.routing.routes import Route

ARCH_ROUTER_PROMPT = """
You are a helpful assistant designed to find the best suited route.
You are provided with route description within <routes></routes> XML tags:
<routes>
{routes}
</routes>

<conversation>
{conversation}
</conversation>

Your task is to decide which route is best suit with user intent on the conversation in <conversation></conversation> XML tags.  Follow the instruction:
1. If the latest intent from user is irrelevant or user intent is full filled, response with other route {"route": "other"}.
2. You must analyze the route descriptions and find the best match route for user latest intent.
3. You only response the name of the route that best matches the user's request, use the exact name in the <routes></routes>.

Based on your analysis, provide your response in the following JSON formats if you decide to match any route:
{"route": "route_name"}
"""  # noqa: E501  (the model was trained on these exact lines)

ORCHESTRATOR_PROMPT = """
You are a helpful assistant that selects the most suitable routes based on user intent.
You are provided with a list of available routes enclosed within <routes></routes> XML tags:
<routes>
{routes}
</routes>

You are also given the conversation context enclosed within <conversation></conversation> XML tags:
<conversation>
{conversation}
</conversation>

## Instructions
1. Analyze the latest user intent from the conversation.
2. Compare it against the available routes to find which routes can help fulfill the request.
3. Respond only with the exact route names from <routes>.
4. If no routes can help or the intent is already fulfilled, return an empty list.

## Response Format
Return your answer strictly in JSON as follows:
{"route": ["route_name_1", "route_name_2", "..."]}
If no routes are needed, return an empty list for `route`.
"""

NO_ROUTE = "other"


_PLACEHOLDER = re.compile(r"\{routes\}|\{conversation\}")


class PromptStyle(Enum):
    ARCH_ROUTER = "arch-router"
    ORCHESTRATOR = "orchestrator-v1"


class RouterAnswerError(ValueError):
    """The router model's reply is not a route answer."""


def style_for(model: str) -> PromptStyle:
    lowered = model.lower()
    if "orchestrator" in lowered:
        return PromptStyle.ORCHESTRATOR
    return PromptStyle.ARCH_ROUTER


# How upstream lists an agent in the orchestrator prompt: a route with no parameters.
AGENT_PARAMETERS = {"type": "object", "properties": {}, "required": []}


def build_prompt(
    style: PromptStyle,
    routes: Sequence[Route],
    turns: Sequence[Turn],
    *,
    agent_routes: bool = False,
) -> str:
    """The router prompt; `agent_routes` lists each route as upstream lists agents."""
    if agent_routes:
        listed = [
            {"name": r.name, "description": r.description, "parameters": AGENT_PARAMETERS}
            for r in routes
        ]
    else:
        listed = [{"name": r.name, "description": r.description} for r in routes]
    conversation = [{"role": role, "content": text} for role, text in turns]
    if style is PromptStyle.ORCHESTRATOR:
        # One route per line, spaced JSON; the conversation indented by four: as upstream.
        routes_text = "\n".join(json.dumps(r, ensure_ascii=False) for r in listed)
        conversation_text = json.dumps(conversation, indent=4, ensure_ascii=False)
        template = ORCHESTRATOR_PROMPT
    else:
        routes_text = json.dumps(listed, separators=(",", ":"), ensure_ascii=False)
        conversation_text = json.dumps(conversation, separators=(",", ":"), ensure_ascii=False)
        template = ARCH_ROUTER_PROMPT
    # One pass: a route description or a message that contains "{conversation}" or
    # "{routes}" must stay text, not become a second copy of the other block.
    filled = {"{routes}": routes_text, "{conversation}": conversation_text}
    return _PLACEHOLDER.sub(lambda m: filled[m.group(0)], template)


def prompt_chars(style: PromptStyle) -> int:
    return len(ORCHESTRATOR_PROMPT if style is PromptStyle.ORCHESTRATOR else ARCH_ROUTER_PROMPT)


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)
_DECODER = json.JSONDecoder()


def parse_answer(text: str) -> list[str]:
    """Route names in the answer, best first; an empty list means no route."""
    cleaned = _FENCE.sub("", text.strip()).strip()
    if not cleaned:
        return []
    start = cleaned.find("{")
    if start < 0:
        raise RouterAnswerError(f"no JSON object in the router's answer: {text[:200]!r}")
    data = _first_object(cleaned[start:])
    if data is None:  # small models answer {'route': 'x'}, or put a literal \\n in the JSON
        data = _first_object(cleaned[start:].replace("'", '"').replace("\\n", ""))
    if data is None:
        raise RouterAnswerError(f"unreadable router answer: {text[:200]!r}")
    if not isinstance(data, dict) or "route" not in data:
        raise RouterAnswerError(f"the router's answer has no 'route': {text[:200]!r}")
    route = data["route"]
    names = route if isinstance(route, list) else [route]
    found = []
    for name in names:
        if isinstance(name, str) and name.strip() and name.strip().lower() != NO_ROUTE:
            found.append(name.strip())
    return found


def _first_object(text: str) -> object | None:
    """The first JSON value at the start of text; what follows it (prose) is ignored."""
    try:
        return _DECODER.raw_decode(text)[0]
    except json.JSONDecodeError:
        return None
