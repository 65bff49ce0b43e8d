"""The agent listener: OpenAI Chat, Anthropic Messages and Responses clients, served by
agents that an orchestrator chooses; /routing/v1/* for the choice alone.

The request edge is the model listener's (`_endpoint`: body limit, JSON errors in the
client's shape, telemetry, access log); only the core differs: an `AgentChain` where the
model listener has its `Gateway`.
"""

from __future__ import annotations

import time

import aiohttp
from aiohttp import web

from proxy.agents.chain import AgentChain
from proxy.agents.orchestrator import Orchestrator
from proxy.canonical import WireError
from proxy.config.model import Config, Listener
from proxy.gateway.client_api import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES, ClientAPI
from proxy.gateway.pipeline import ClientError
from proxy.server.client_input import MAX_BODY_BYTES, check_headers, read_json
from proxy.server.model_app import (
    GATEWAY,
    OBSERVERS,
    SESSION,
    STORE,
    TELEMETRY,
    Observer,
    _chat_endpoint,
    _endpoint,
    _json,
    _json_errors,
    _serve_responses,
    _trace_id,
    model_list,
)
from proxy.state.conversations import open_store
from proxy.telemetry.hub import TelemetryHub
from proxy.upstream.retry import Backoff
from proxy.wire import openai_responses

ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)


def build_agent_app(
    config: Config,
    listener: Listener,
    orchestrator: Orchestrator,
    observers: list[Observer] | None = None,
    backoff: Backoff | None = None,
    telemetry: TelemetryHub | None = None,
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_json_errors])
    app[OBSERVERS] = list(observers or [])
    app[TELEMETRY] = telemetry or TelemetryHub(config.tracing, listener.name)
    app[ORCHESTRATOR] = orchestrator
    started = int(time.time())

    async def open_session(app: web.Application) -> None:
        # Responses clients' previous_response_id works here as on the model listener.
        app[STORE] = await open_store(config.state_storage)
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=256, ttl_dns_cache=300, keepalive_timeout=30
        )
        app[SESSION] = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )
        app[GATEWAY] = AgentChain(config, listener, app[SESSION], orchestrator, backoff)

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()
        await app[STORE].close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)

    async def models(request: web.Request) -> web.Response:
        return _json(model_list(config, started))

    async def healthz(request: web.Request) -> web.Response:
        agents = [agent.id for agent in listener.agents]
        return _json({"status": "ok", "listener": listener.name, "agents": agents})

    app.router.add_post("/v1/chat/completions", _chat_endpoint(OPENAI_CHAT))
    app.router.add_post("/v1/messages", _chat_endpoint(ANTHROPIC_MESSAGES))
    app.router.add_post("/v1/responses", _endpoint(OPENAI_RESPONSES, _serve_responses))
    app.router.add_post("/routing/v1/chat/completions", _plan_endpoint(OPENAI_CHAT))
    app.router.add_post("/routing/v1/messages", _plan_endpoint(ANTHROPIC_MESSAGES))
    app.router.add_post("/routing/v1/responses", _plan_endpoint(OPENAI_RESPONSES))
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    return app


def _plan_endpoint(api: ClientAPI):
    """POST /routing/v1/*: which agents would run, in what order, without running any."""
    parse = openai_responses.parse_request if api is OPENAI_RESPONSES else api.parse_request

    async def handler(request: web.Request) -> web.Response:
        try:
            check_headers(request)
            body, _ = await read_json(request)
            try:
                # The model is optional here: the orchestrator is what is being asked.
                chat = parse({"model": "none", **body} if not body.get("model") else body)
            except WireError as exc:
                raise ClientError(400, exc.message, exc.param) from None
        except ClientError as exc:
            return _json(api.render_error(exc.status, exc.message), exc.status)
        plan = await request.app[ORCHESTRATOR].plan(chat.messages)
        return _json({**plan.as_json(), "trace_id": _trace_id(request)})

    return handler
