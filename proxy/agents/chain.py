"""An agent listener's request: choose the agents, run them in order, answer the client.

Every agent receives Chat Completions: an OpenAI Chat client's body as it came (only
`messages` grows), any other client's request translated through the canonical model.
An intermediate agent's whole answer is handed to the next as an assistant turn named
after it, placed before the last user turn; the last agent's answer goes back to the
client as it arrives, rendered in the client's own API.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from proxy.agents.answer import is_stream, parse_json_answer, read_answer, read_body
from proxy.agents.call import (
    UPSTREAM_HEADER,
    AgentFailure,
    AgentTarget,
    broke,
    forwarded_headers,
    open_call,
    timed_out,
    too_large,
)
from proxy.agents.orchestrator import AgentPlan, Orchestrator
from proxy.auth.edge import client_key_headers
from proxy.canonical import (
    ChatRequest,
    ChatResponse,
    StreamError,
    TextDelta,
    ToolCallStart,
)
from proxy.canonical import response_events as events_of
from proxy.config.model import Config, Listener
from proxy.config.redact import redact_text
from proxy.filters.errors import FilterBlocked, FilterErrored
from proxy.filters.output import transform_response
from proxy.gateway.client_api import ClientAPI
from proxy.gateway.core import ChatCore
from proxy.gateway.errors import ClientError
from proxy.gateway.exchange import Exchange, Step, StepKind
from proxy.gateway.relay import (
    ClientGone,
    Relay,
    answer_renderer,
    commit,
    filter_answer,
    finish,
    first_events,
)
from proxy.providers.catalog import Wire
from proxy.telemetry.hub import TRACE_ID_HEADER
from proxy.telemetry.tracecontext import new_span_id
from proxy.upstream.retry import Backoff
from proxy.wire import openai_chat
from proxy.wire.model_name import KEEP_NAME
from proxy.wire.sse import SSEEvent, SSEEventTooLarge, SSEParser

_JSON = "application/json"
AGENTS_HEADER = "x-plano-agents"  # on every answer: the agents that ran, in order
HANDOFF_ATTRIBUTE_CHARS = 4096  # of an intermediate answer, on its span (capture only)


class AgentChain(ChatCore):
    """The agent listener's request handler; one per listener, shared by its requests."""

    def __init__(
        self,
        config: Config,
        listener: Listener,
        session: aiohttp.ClientSession,
        orchestrator: Orchestrator,
        backoff: Backoff | None = None,
    ):
        super().__init__(config, listener)
        self.session = session
        self.orchestrator = orchestrator
        self.backoff = backoff or Backoff()
        self.targets = {agent.id: AgentTarget.of(agent) for agent in config.agents}
        # An agent's answer is held whole (handed on, or translated) or relayed event by
        # event: both within the bound a model's answer gets.
        self.max_answer = config.overrides.max_upstream_response_bytes

    async def _serve(
        self,
        request: web.Request,
        api: ClientAPI,
        exchange: Exchange,
        body: dict,
        chat: ChatRequest,
    ) -> web.StreamResponse:
        plan = await self.orchestrator.plan(chat.messages, exchange)
        base, messages = _agent_request(api, body, chat)
        headers = forwarded_headers(
            request.headers, exchange.request_id, dropped=client_key_headers(request)
        )
        serving = _Serving(request, api, exchange, body, chat, _reply_headers(exchange, plan))
        handoffs: list[dict] = []
        for position, agent_id in enumerate(plan.agents, 1):
            last = position == len(plan.agents)
            target = self.targets[agent_id]
            payload = orjson.dumps({**base, "messages": _with_handoffs(messages, handoffs)})
            if exchange.filters is not None:
                # The agent's input filters see (and may change or refuse) what it is sent.
                payload = await exchange.filters.agent_body(agent_id, payload)
            step = Step(StepKind.AGENT, agent_id, new_span_id(), time.perf_counter())
            step.attributes = {"agent.position": position, "agent.chain_length": len(plan.agents)}
            exchange.steps.append(step)
            call_headers = {**headers, UPSTREAM_HEADER: agent_id}
            if exchange.trace is not None:
                # The agent's own spans, and its LLM calls through Plano, hang off plano(agent).
                call_headers["traceparent"] = exchange.trace.traceparent(step.span_id)
            call = _Call(target, payload, call_headers, step)
            try:
                if last:
                    return await self._last(serving, call)
                answer = await self._whole(call, chat.stream)
            except AgentFailure as exc:
                if not step.seconds:
                    step.end(exc.outcome, exc.message)
                raise ClientError(exc.status, exc.message) from None
            except asyncio.CancelledError:
                step.end("client disconnect")
                raise
            step.end("ok")
            if exchange.capture:
                step.attributes["agent.handoff"] = answer.text[:HANDOFF_ATTRIBUTE_CHARS]
            handoffs.append({"role": "assistant", "content": answer.text, "name": agent_id})
        raise AssertionError("a plan always has an agent")  # pragma: no cover

    # --- one agent ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _answer_of(self, call: _Call, stream: bool) -> AsyncIterator[aiohttp.ClientResponse]:
        """The agent's 2xx response while it is read; read errors become AgentFailures."""
        call.timeout = self._timeout_stream if stream else self._timeout_json
        response = await open_call(
            self.session,
            call.target,
            call.payload,
            call.headers,
            call.timeout,
            self.listener.max_retries,
            self.backoff,
        )
        try:
            yield response
        except TimeoutError:
            raise timed_out(call.target, call.timeout) from None
        except aiohttp.ClientError as exc:
            raise broke(call.target, exc) from None
        finally:
            response.release()  # back to the pool when fully read, closed otherwise

    async def _whole(self, call: _Call, stream: bool) -> ChatResponse:
        """An intermediate agent's answer, read to its end."""
        async with self._answer_of(call, stream) as response:
            return await read_answer(call.target, response, self.max_answer)

    async def _last(self, serving: _Serving, call: _Call) -> web.StreamResponse:
        api, exchange, body, chat = serving.api, serving.exchange, serving.body, serving.chat
        # An OpenAI Chat client gets the agent's own bytes; others a translation.
        exchange.passthrough = api.wire is Wire.OPENAI
        async with self._answer_of(call, chat.stream) as response:
            if chat.stream and is_stream(response):
                return await self._relay(serving, call, response)
            if chat.stream:  # the agent answered in one piece: streamed to the client anyway
                answer = await read_answer(call.target, response, self.max_answer)
                call.step.end("ok")
                return await self._stream_whole(serving, answer)
            transform = exchange.filters.transform() if exchange.filters is not None else None
            if exchange.passthrough and not is_stream(response) and transform is None:
                raw = await read_body(call.target, response, self.max_answer)
                answer = parse_json_answer(call.target, raw)  # checked, and for the record
            else:
                answer = await read_answer(call.target, response, self.max_answer)
                if transform is not None:
                    transform_response(answer, transform)
                raw = orjson.dumps(api.render_response(answer, chat.model, body))
        call.step.end("ok")
        raw = await filter_answer(exchange, raw)
        exchange.mark_first_token()
        exchange.usage, exchange.result, exchange.status = answer.usage, answer, 200
        if exchange.capture:
            exchange.response_body = raw
        return web.Response(body=raw, status=200, content_type=_JSON, headers=serving.headers)

    async def _relay(
        self, serving: _Serving, call: _Call, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        """The last agent's stream, to the client as it comes (the model path's relay)."""
        api, exchange, chat = serving.api, serving.exchange, serving.chat
        target, step = call.target, call.step
        sse, tap = SSEParser(self.max_answer), openai_chat.StreamParser()
        chunks = upstream.content.iter_any()
        try:
            # The read timeout is per socket read: an agent dripping a byte at a time must
            # not keep the client waiting, with nothing sent, without end.
            async with asyncio.timeout(self.listener.timeout_s):
                first = await first_events(chunks, sse)
        except TimeoutError:
            raise timed_out(target, call.timeout) from None
        except SSEEventTooLarge:
            raise too_large(target, self.max_answer) from None
        if isinstance(first, str):
            raise AgentFailure(
                502, "stream error", f"agent '{target.id}' broke off before answering: {first}"
            )
        first_parsed = [(event, tap.feed(event)) for event in first]
        early = [item for _, items in first_parsed for item in items]
        error = next((e for e in early if isinstance(e, StreamError)), None)
        if error is not None and not any(isinstance(e, TextDelta | ToolCallStart) for e in early):
            raise AgentFailure(
                502, "stream error", f"agent '{target.id}' sent an error: {error.message}"
            )
        renderer = answer_renderer(api, exchange, chat.model, serving.body, exchange.passthrough)
        relay = await _commit(serving, tap, renderer)
        if api.holds_stream:
            relay.max_held = self.max_answer
        try:
            await finish(relay, first_parsed, chunks, sse, api, chat.model, f"agent '{target.id}'")
        except asyncio.CancelledError:
            step.end("client disconnect")
            raise
        if exchange.status == 499:
            step.end("client disconnect")
        elif exchange.error:
            step.end("stream error", exchange.error)
        else:
            step.end("ok")
        return relay.response

    async def _stream_whole(self, serving: _Serving, answer: ChatResponse) -> web.StreamResponse:
        renderer = serving.api.stream_renderer(serving.chat.model, serving.body)
        relay = await _commit(serving, None, renderer)
        try:
            await relay.emit([(SSEEvent(""), events_of(answer))])
            await relay.close()
        except ClientGone:
            if not relay.answered:  # gone before the body's end only: it has the answer
                serving.exchange.status, serving.exchange.error = 499, "client disconnected"
        except (FilterBlocked, FilterErrored) as exc:  # an output filter stopped the answer
            serving.exchange.error = exc.message
            await relay.fail(serving.api, serving.chat.model, exc.message, fresh=True)
        return relay.response


async def _commit(serving: _Serving, tap, renderer) -> Relay:
    """Send the 200 and the headers: from here on, errors are events in the stream."""
    response = await commit(serving.request, serving.exchange, serving.headers)
    # An agent's answer keeps the model name the agent gave it; error texts are an
    # agent's own words, with no provider key of Plano's in them to mask.
    return Relay(response, serving.exchange, tap, renderer, False, KEEP_NAME, redact_text)


@dataclass(slots=True)
class _Serving:
    """The client's side of one request, as the chain's steps need it."""

    request: web.Request
    api: ClientAPI
    exchange: Exchange
    body: dict
    chat: ChatRequest
    headers: dict[str, str]  # for the client's answer


class _Call:
    """One agent call's parts, passed between the steps of serving it."""

    __slots__ = ("headers", "payload", "step", "target", "timeout")

    def __init__(self, target: AgentTarget, payload: bytes, headers: dict[str, str], step: Step):
        self.target, self.payload, self.headers, self.step = target, payload, headers, step
        self.timeout: aiohttp.ClientTimeout | None = None


def _agent_request(api: ClientAPI, body: dict, chat: ChatRequest) -> tuple[dict, list]:
    """The Chat Completions body every agent gets (without messages), and the messages."""
    if api.wire is Wire.OPENAI:
        # Upstream's contract: the client's own body, messages replaced.
        return {k: v for k, v in body.items() if k != "messages"}, list(body["messages"])
    built = openai_chat.build_request(chat, chat.model)
    return built, built.pop("messages")


def _with_handoffs(messages: list, handoffs: list[dict]) -> list:
    """Earlier agents' answers, in order, just before the last user turn (as upstream)."""
    if not handoffs:
        return messages
    last_user = next(
        (
            i
            for i in range(len(messages) - 1, -1, -1)
            if isinstance(messages[i], dict) and messages[i].get("role") == "user"
        ),
        len(messages),
    )
    return [*messages[:last_user], *handoffs, *messages[last_user:]]


def _reply_headers(exchange: Exchange, plan: AgentPlan) -> dict[str, str]:
    headers = {
        "x-request-id": exchange.request_id,
        # Agent ids are printable but may be non-ASCII: headers carry them %-encoded.
        AGENTS_HEADER: ",".join(quote(agent, safe=" _-.:/+") for agent in plan.agents),
    }
    if exchange.trace is not None:
        headers[TRACE_ID_HEADER] = exchange.trace.trace_id
    return headers
