"""An agent's whole answer, read from its JSON body or its Chat Completions stream."""

from __future__ import annotations

import aiohttp
import orjson

from proxy.agents.call import AgentFailure, AgentTarget, malformed
from proxy.canonical import ChatResponse, StreamAccumulator
from proxy.wire import openai_chat
from proxy.wire.sse import SSEParser

# An answer larger than this is not a chat answer: the call fails rather than fill memory.
MAX_ANSWER_BYTES = 32 * 1024 * 1024


def is_stream(response: aiohttp.ClientResponse) -> bool:
    return response.content_type == "text/event-stream"


async def read_body(target: AgentTarget, response: aiohttp.ClientResponse) -> bytes:
    """The whole body, at most MAX_ANSWER_BYTES."""
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _too_large(target)
    return bytes(body)


def parse_json_answer(target: AgentTarget, raw: bytes) -> ChatResponse:
    try:
        return openai_chat.parse_response(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise malformed(target, "sent an answer that is not a chat completion") from None


async def read_answer(target: AgentTarget, response: aiohttp.ClientResponse) -> ChatResponse:
    """The agent's answer in one piece, whichever way it sent it."""
    if not is_stream(response):
        return parse_json_answer(target, await read_body(target, response))
    sse, tap, answer = SSEParser(), openai_chat.StreamParser(), StreamAccumulator()
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _too_large(target)
        for event in sse.feed(chunk):
            answer.extend(tap.feed(event))
    for event in sse.flush():
        answer.extend(tap.feed(event))
    if answer.error is not None:
        raise AgentFailure(
            502, "stream error", f"agent '{target.id}' sent an error: {answer.error.message}"
        )
    return answer.response()


def _too_large(target: AgentTarget) -> AgentFailure:
    return malformed(target, f"sent an answer larger than {MAX_ANSWER_BYTES} bytes")
