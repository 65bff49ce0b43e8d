"""The model listener: OpenAI Chat, Anthropic Messages, /v1/models and /healthz."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

import aiohttp
import orjson
from aiohttp import web

from proxy.auth.edge import CLIENT_KEY_ID, client_key_middleware
from proxy.canonical import ChatRequest, WireError
from proxy.config.model import Config, Listener
from proxy.filters.chain import FilterSet, used_filters
from proxy.gateway.client_api import (
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    ClientAPI,
    ResponsesAPI,
    api_for_path,
)
from proxy.gateway.exchange import Exchange, Outcome, StepKind
from proxy.gateway.pipeline import ClientError, Gateway
from proxy.limits.enforce import RateLimiter
from proxy.routing.affinity import AFFINITY_HEADER
from proxy.routing.routes import RouteSpecError, routes_from_body
from proxy.routing.service import RoutingService, decision_payload
from proxy.server.client_input import MAX_BODY_BYTES, check_headers, header_text, read_json
from proxy.state.conversations import open_store
from proxy.telemetry.hub import TRACE_ID_HEADER, TelemetryHub
from proxy.telemetry.tracecontext import new_trace_id, parse_traceparent
from proxy.upstream.retry import Backoff
from proxy.wire import openai_responses

log = logging.getLogger("plano.server")
access_log = logging.getLogger("plano.access")

GATEWAY = web.AppKey("gateway", Gateway)
STORE = web.AppKey("store", object)
SESSION = web.AppKey("session", aiohttp.ClientSession)
FILTERS = web.AppKey("filters", object)  # FilterSet, or None: the listener runs none
FILTER_SESSION = web.AppKey("filter_session", object)
Observer = Callable[[Exchange], None]
_SAID_BY_STATUS = (Outcome.OK, Outcome.ERROR)
OBSERVERS = web.AppKey("observers", list)
TELEMETRY = web.AppKey("telemetry", TelemetryHub)


def build_model_app(
    config: Config,
    listener: Listener,
    observers: list[Observer] | None = None,
    backoff: Backoff | None = None,
    router: RoutingService | None = None,
    telemetry: TelemetryHub | None = None,
    shared_state: object = None,
) -> web.Application:
    """`shared_state`: the process's SharedState when configured (rate-limit budgets in
    Redis); None keeps them in this process's memory."""
    limiter = RateLimiter.for_config(config, shared_state)
    app = chat_app(
        config,
        listener,
        lambda session: Gateway(config, listener, session, backoff, router, limiter),
        observers,
        telemetry,
    )
    if limiter is not None:

        async def warm(app: web.Application) -> None:
            await asyncio.to_thread(limiter.warm)  # the encoder, before the first request

        app.on_startup.append(warm)
    app.router.add_post("/routing/v1/chat/completions", _routing_endpoint(OPENAI_CHAT))
    app.router.add_post("/routing/v1/messages", _routing_endpoint(ANTHROPIC_MESSAGES))
    app.router.add_post("/routing/v1/responses", _routing_endpoint(OPENAI_RESPONSES))
    return app


def chat_app(
    config: Config,
    listener: Listener,
    core: Callable[[aiohttp.ClientSession], object],
    observers: list[Observer] | None = None,
    telemetry: TelemetryHub | None = None,
    health: dict | None = None,
) -> web.Application:
    """A listener speaking the three client APIs, with `core(session)` serving requests
    (the model listener's Gateway, an agent listener's AgentChain): the same edge, errors,
    Responses state, telemetry and access log for both."""
    middlewares = [_json_errors]
    if listener.auth is not None:
        middlewares.append(client_key_middleware(listener.auth))
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[OBSERVERS] = list(observers or [])
    # Without a sink, traceparent still flows to upstreams; nothing is recorded.
    app[TELEMETRY] = telemetry or TelemetryHub(config.tracing, listener.name)
    started = int(time.time())

    async def open_session(app: web.Application) -> None:
        # First: it is what may fail. Its health goes where /metrics is counted.
        sink = app[TELEMETRY].sink
        metrics = sink if hasattr(sink, "store_error") else None  # tests' sinks may lack it
        app[STORE] = await open_store(config.state_storage, metrics)
        # One pooled session for the listener's lifetime: no per-request setup.
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=256, ttl_dns_cache=300, keepalive_timeout=60
        )
        app[SESSION] = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )
        app[GATEWAY] = core(app[SESSION])
        app[FILTERS] = app[FILTER_SESSION] = None
        if used_filters(listener):
            # Filters get their own pool: no cookies kept, and their connections never
            # wait behind (or hold up) the upstream calls'.
            app[FILTER_SESSION] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=64, keepalive_timeout=60),
                auto_decompress=True,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent",),
            )
            app[FILTERS] = FilterSet(config, listener, app[FILTER_SESSION])
            # The built-ins' lazy loads (the injection encoder, seconds), before the
            # first request, not on it.
            await asyncio.to_thread(app[FILTERS].warm)

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()
        await app[STORE].close()
        if app[FILTERS] is not None:
            await app[FILTERS].close()
            await app[FILTER_SESSION].close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)

    async def models(request: web.Request) -> web.Response:
        return _json(model_list(config, started))

    async def healthz(request: web.Request) -> web.Response:
        return _json({"status": "ok", "listener": listener.name, **(health or {})})

    app.router.add_post("/v1/chat/completions", _chat_endpoint(OPENAI_CHAT))
    app.router.add_post("/v1/messages", _chat_endpoint(ANTHROPIC_MESSAGES))
    app.router.add_post("/v1/responses", _endpoint(OPENAI_RESPONSES, _serve_responses))
    app.router.add_get("/v1/models", models)
    app.router.add_get("/healthz", healthz)
    return app


def model_list(config: Config, created: int) -> dict:
    """GET /v1/models: the configured models and aliases (agent listeners list them too)."""
    entries = [p.model for p in config.providers if not p.is_wildcard]
    entries += [alias for alias in config.aliases if alias not in entries]
    data = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": name.split("/", 1)[0] if "/" in name else "plano",
        }
        for name in entries
    ]
    return {"object": "list", "data": data}


def _endpoint(api: ClientAPI, serve):
    """A handler: read the JSON body, serve it, and answer errors in the API's own shape."""

    async def handler(request: web.Request) -> web.StreamResponse:
        exchange = Exchange(
            request_id=header_text(request, "x-request-id") or uuid.uuid4().hex,
            api=api.name,
            path=request.path,
            session=header_text(request, AFFINITY_HEADER),
            client_key_id=request.get(CLIENT_KEY_ID),
        )
        telemetry = request.app[TELEMETRY]
        telemetry.start(request, exchange)
        try:
            check_headers(request)
            body, raw = await read_json(request)
            filters = request.app[FILTERS]
            if filters is not None:
                # Before anything parses the request: what the filters return is the request.
                raw, body = await filters.start(request, api.name, exchange).request_body(raw, body)
            if exchange.capture:
                exchange.request_body = raw  # as filtered: a redaction must not reach the store
            response = await serve(request, exchange, body)
        except ClientError as exc:
            exchange.status, exchange.error = exc.status, exc.message
            headers = _error_headers(exchange)
            if exc.retry_after:
                headers["Retry-After"] = exc.retry_after
            if exc.headers:
                headers.update(exc.headers)
            response = _json(api.render_error(exc.status, exc.message), exc.status, headers)
        except asyncio.CancelledError:
            exchange.status, exchange.error = 499, "client disconnected"
            raise
        except Exception:
            log.exception("unhandled error for request %s", exchange.request_id)
            exchange.status, exchange.error = 500, "internal error"
            response = _json(
                api.render_error(500, "internal error in the Plano gateway"),
                500,
                _error_headers(exchange),
            )
        finally:
            exchange.finished_at = time.perf_counter()
            _observe(request.app, exchange)
            telemetry.finish(request, exchange)
        return response

    return handler


def _error_headers(exchange: Exchange) -> dict[str, str]:
    headers = {"x-request-id": exchange.request_id}
    if exchange.trace is not None:
        headers[TRACE_ID_HEADER] = exchange.trace.trace_id
    return headers


def _chat_endpoint(api: ClientAPI):
    async def serve(request: web.Request, exchange: Exchange, body: dict):
        return await request.app[GATEWAY].handle(request, api, exchange, body)

    return _endpoint(api, serve)


def _routing_endpoint(api: ClientAPI):
    """POST /routing/v1/*: the routing decision for a request, without calling any model."""

    async def handler(request: web.Request) -> web.Response:
        gateway = request.app[GATEWAY]
        decision = None
        try:
            body, chat = await dry_run_request(request, api)
            try:
                routes = routes_from_body(body)
            except RouteSpecError as exc:
                raise ClientError(400, exc.message, exc.param) from None
            if gateway.router is not None and (routes or gateway.router.routes):
                # May raise StoreUnavailable: pins in a shared store that is down.
                decision = await gateway.route(request, chat, routes)
        except ClientError as exc:
            headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
            return _json(api.render_error(exc.status, exc.message), exc.status, headers)
        return _json(routing_response(config_default(gateway), decision, request))

    return handler


async def dry_run_request(request: web.Request, api: ClientAPI) -> tuple[dict, ChatRequest]:
    """A /routing/v1/* body, read and parsed as its /v1/ twin's, except that `model` is
    optional: the router is what is being asked. Raises ClientError."""
    check_headers(request)
    body, _ = await read_json(request)
    parse = openai_responses.parse_request if api is OPENAI_RESPONSES else api.parse_request
    try:
        return body, parse({"model": "none", **body} if not body.get("model") else body)
    except WireError as exc:
        raise ClientError(400, exc.message, exc.param) from None


def config_default(gateway: Gateway) -> str | None:
    default = gateway.config.default_provider
    return default.model if default is not None else None


def routing_response(default_model: str | None, decision, request: web.Request) -> dict:
    """The decision payload, with the trace it belongs to."""
    return {**decision_payload(decision, default_model), "trace_id": _trace_id(request)}


def _trace_id(request: web.Request) -> str:
    parent = parse_traceparent(request.headers.get("traceparent"))
    return parent.trace_id if parent is not None else new_trace_id()


async def _serve_responses(request: web.Request, exchange: Exchange, body: dict):
    """POST /v1/responses: the conversation so far comes from the store, not the client."""
    try:
        previous = openai_responses.previous_response_id(body)
        chat = openai_responses.parse_request(body)
    except WireError as exc:
        raise ClientError(400, exc.message, exc.param) from None
    store = request.app[STORE]
    api = ResponsesAPI(openai_responses.new_response_id(), previous)
    new_turn = [m for m in chat.messages if m.role != "system"]
    if openai_responses.wants_store(body):
        await store.ready()  # fail_closed: no answer that could not be stored (a 503)
    if previous is not None:
        history = await store.load(previous)  # a store that cannot answer: a 503
        if history is None:
            raise ClientError(400, f"Previous response with id '{previous}' not found.")
        # This request's instructions lead; earlier instructions are not carried over.
        chat.messages = [m for m in chat.messages if m.role == "system"] + history + new_turn
    response = await request.app[GATEWAY].run_chat(request, api, exchange, body, chat)
    result = exchange.result or (api.renderer.result if api.renderer else None)
    if (
        exchange.status == 200
        and not exchange.error
        and result is not None
        and openai_responses.wants_store(body)
    ):
        try:
            await store.save(
                api.response_id,
                previous,
                exchange.model or "",
                new_turn + openai_responses.response_messages(result),
            )
        except Exception:  # the answer is served (and billed): a store failure must not undo it
            log.exception("could not store response %s", api.response_id)
    return response


def _observe(app: web.Application, exchange: Exchange) -> None:
    if access_log.isEnabledFor(logging.INFO):  # build the line only when it is written
        usage = exchange.usage
        ttft = exchange.ttft_s if exchange.stream else None
        outcome = exchange.outcome
        access_log.info(
            "%s %s %d%s model=%s%s attempts=%d%s latency=%.3fs%s%s",
            exchange.api,
            exchange.path,
            exchange.status,
            # What the status cannot say: a 200 stream that failed, a shutdown, a client gone.
            "" if outcome in _SAID_BY_STATUS else f" outcome={outcome}",
            exchange.model or exchange.requested_model,
            _decision(exchange),
            len(exchange.attempts),
            f" ttft={ttft:.3f}s" if ttft else "",
            exchange.latency_s,
            f" tokens={usage.input_tokens}/{usage.output_tokens}" if usage else "",
            f" key={exchange.client_key_id}" if exchange.client_key_id else "",
        )
    for observer in app[OBSERVERS]:
        try:
            observer(exchange)
        except Exception:  # telemetry must never break the request path
            log.exception("observer failed")


def _decision(exchange: Exchange) -> str:
    """The access line's word on who decided: the router's route, or the agents that ran."""
    routing = exchange.routing
    if routing is not None:
        return f" route={routing.route or '-'}" + (" router=fallback" if routing.fallback else "")
    if not exchange.steps:
        return ""
    agents = [step.name for step in exchange.steps if step.kind is StepKind.AGENT]
    fallback = any(step.outcome == "fallback" for step in exchange.steps)
    return f" agents={','.join(agents) or '-'}" + (" orchestrator=fallback" if fallback else "")


@web.middleware
async def _json_errors(request: web.Request, handler) -> web.StreamResponse:
    """aiohttp's own 404/405 pages, in the API's JSON error shape instead of HTML."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = f"{request.method} {request.path}: {exc.reason}"
        return _json(api_for_path(request.path).render_error(exc.status, message), exc.status)


def _json(payload: dict, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )
