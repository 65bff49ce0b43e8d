"""What every listener's request handler shares, whatever serves the request.

The model listener's `Gateway` (route, candidates, retries, failover) and an agent
listener's `AgentChain` (orchestrate, agents in order) are both a `ChatCore`: the request
is parsed through its client API, tracked while in flight (so a shutdown can wait for it
and, at its bound, end it with an answer), and upstream calls get the listener's timeouts.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from proxy.canonical import ChatRequest, WireError
from proxy.config.model import Config, Listener
from proxy.config.redact import mask_key_like
from proxy.gateway.client_api import ClientAPI
from proxy.gateway.errors import ClientError
from proxy.gateway.exchange import Exchange
from proxy.gateway.inflight import SHUTDOWN_MESSAGE, InFlight, absorb_shutdown


class ChatCore:
    """One per listener, shared by its requests; subclasses serve a parsed request."""

    def __init__(self, config: Config, listener: Listener):
        self.config = config
        self.listener = listener
        # What is being served, for the shutdown to wait on and, at its bound, end.
        self.inflight = InFlight()
        connect = config.overrides.upstream_connect_timeout_s
        self._timeout_json = aiohttp.ClientTimeout(total=listener.timeout_s, sock_connect=connect)
        # A stream may run long; what must not happen is a long silence.
        self._timeout_stream = aiohttp.ClientTimeout(
            total=None, sock_connect=connect, sock_read=listener.timeout_s
        )

    async def handle(
        self, request: web.Request, api: ClientAPI, exchange: Exchange, body: dict
    ) -> web.StreamResponse:
        try:
            chat = api.parse_request(body)
        except WireError as exc:
            raise ClientError(400, exc.message, exc.param) from None
        return await self.run_chat(request, api, exchange, body, chat)

    async def run_chat(
        self,
        request: web.Request,
        api: ClientAPI,
        exchange: Exchange,
        body: dict,
        chat: ChatRequest,
    ) -> web.StreamResponse:
        """Serve an already parsed request (the Responses API parses its own)."""
        # For the access log, spans and the store: a key sent as the model stays masked.
        exchange.requested_model = mask_key_like(chat.model) if chat.model else chat.model
        exchange.stream = chat.stream
        task = self.inflight.add(exchange)
        try:
            return await self._serve(request, api, exchange, body, chat)
        except asyncio.CancelledError:
            if not absorb_shutdown(exchange):
                raise  # the client went away
            # Nothing was sent yet (a stream under way answers for itself): say why.
            raise ClientError(503, SHUTDOWN_MESSAGE) from None
        finally:
            self.inflight.discard(task)

    async def _serve(
        self,
        request: web.Request,
        api: ClientAPI,
        exchange: Exchange,
        body: dict,
        chat: ChatRequest,
    ) -> web.StreamResponse:
        raise NotImplementedError
