"""An agent's whole answer, read from its JSON body or its Chat Completions stream."""

from __future__ import annotations

import aiohttp
import orjson

from proxy.agents.call import AgentFailure, AgentTarget, malformed, too_large
from proxy.canonical import ChatResponse, StreamAccumulator
from proxy.wire import openai_chat
from proxy.wire.sse import SSEEventTooLarge, SSEParser


def is_stream(response: aiohttp.ClientResponse) -> bool:
    return response.content_type == "text/event-stream"


async def read_body(target: AgentTarget, response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, at most `limit` bytes (overrides.max_upstream_response_bytes)."""
    if response.content_length is not None and response.content_length > limit:
        raise too_large(target, limit)
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise too_large(target, limit)
    return bytes(body)


def parse_json_answer(target: AgentTarget, raw: bytes) -> ChatResponse:
    try:
        return openai_chat.parse_response(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise malformed(target, "sent an answer that is not a chat completion") from None


async def read_answer(
    target: AgentTarget, response: aiohttp.ClientResponse, limit: int
) -> ChatResponse:
    """The agent's answer in one piece, whichever way it sent it, at most `limit` bytes."""
    if not is_stream(response):
        return parse_json_answer(target, await read_body(target, response, limit))
    sse, tap, answer = SSEParser(limit), openai_chat.StreamParser(), StreamAccumulator()
    size = 0
    try:
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise too_large(target, limit)
            for event in sse.feed(chunk):
                answer.extend(tap.feed(event))
        for event in sse.flush():
            answer.extend(tap.feed(event))
    except SSEEventTooLarge:
        raise too_large(target, limit) from None
    if answer.error is not None:
        raise AgentFailure(
            502, "stream error", f"agent '{target.id}' sent an error: {answer.error.message}"
        )
    return answer.response()
