"""The agent listener: OpenAI Chat, Anthropic Messages and Responses clients, served by
agents that an orchestrator chooses; /routing/v1/* for the choice alone.

The listener is the model listener's (`chat_app`: the request edge, JSON errors in the
client's shape, Responses state, telemetry, access log); only the core differs: an
`AgentChain` where the model listener has its `Gateway`.
"""

from __future__ import annotations

from aiohttp import web

from proxy.agents.chain import AgentChain
from proxy.agents.orchestrator import Orchestrator
from proxy.config.model import Config, Listener
from proxy.gateway.client_api import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES, ClientAPI
from proxy.gateway.pipeline import ClientError
from proxy.server.model_app import Observer, _json, _trace_id, chat_app, dry_run_request
from proxy.telemetry.hub import TelemetryHub
from proxy.upstream.retry import Backoff

ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)


def build_agent_app(
    config: Config,
    listener: Listener,
    orchestrator: Orchestrator,
    observers: list[Observer] | None = None,
    backoff: Backoff | None = None,
    telemetry: TelemetryHub | None = None,
) -> web.Application:
    app = chat_app(
        config,
        listener,
        lambda session: AgentChain(config, listener, session, orchestrator, backoff),
        observers,
        telemetry,
        health={"agents": [agent.id for agent in listener.agents]},
    )
    app[ORCHESTRATOR] = orchestrator
    app.router.add_post("/routing/v1/chat/completions", _plan_endpoint(OPENAI_CHAT))
    app.router.add_post("/routing/v1/messages", _plan_endpoint(ANTHROPIC_MESSAGES))
    app.router.add_post("/routing/v1/responses", _plan_endpoint(OPENAI_RESPONSES))
    return app


def _plan_endpoint(api: ClientAPI):
    """POST /routing/v1/*: which agents would run, in what order, without running any."""

    async def handler(request: web.Request) -> web.Response:
        try:
            _, chat = await dry_run_request(request, api)
        except ClientError as exc:
            return _json(api.render_error(exc.status, exc.message), exc.status)
        plan = await request.app[ORCHESTRATOR].plan(chat.messages)
        return _json({**plan.as_json(), "trace_id": _trace_id(request)})

    return handler
