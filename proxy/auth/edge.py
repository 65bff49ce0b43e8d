"""A listener's door (`listeners[].auth`): every request but /healthz carries an accepted
client key, or gets a 401 in its API's error shape.

The key is read from `Authorization: Bearer <key>` (OpenAI SDKs), `x-api-key` (Anthropic
SDKs) or `api-key` (Azure OpenAI SDKs). The headers holding a client key are remembered on
the request so that nothing forwards them: not to a provider (`passthrough_auth` forwards
the client's other credential header, if it sent one, as before) and not to an agent.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from proxy.auth.keys import KeyTable
from proxy.config.model import ListenerAuth
from proxy.gateway.client_api import OPENAI_CHAT, api_for_path
from proxy.upstream.targets import PASSTHROUGH_AUTH_HEADERS

CLIENT_KEY_ID = web.RequestKey("client_key_id", str)
KEY_HEADERS = web.RequestKey("client_key_headers", frozenset)
# Where a client key may be: the credential headers the SDKs send, which passthrough_auth
# forwards.
CREDENTIAL_HEADERS = PASSTHROUGH_AUTH_HEADERS
OPEN_PATHS = frozenset({"/healthz"})  # probes carry no key
MISSING = (
    "missing client key: this listener requires one, as `Authorization: Bearer <key>` or "
    "`x-api-key: <key>`"
)
UNKNOWN = "invalid client key: the key sent is not one this listener accepts"

access_log = logging.getLogger("plano.access")


def client_key_middleware(auth: ListenerAuth):
    table = KeyTable(auth.keys)

    @web.middleware
    async def require_client_key(request: web.Request, handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        found, held_in, sent = None, [], False
        for name in CREDENTIAL_HEADERS:
            values = request.headers.getall(name, ())
            if not values:
                continue
            if len(values) > 1:
                # Two keys (even two right ones): which caller it is cannot be told.
                return _unauthorized(request, _twice(name, len(values)), "ambiguous")
            value = values[0]
            sent = True
            key = table.match(_bearer(value) if name == "authorization" else value)
            if key is not None:
                held_in.append(name)
                found = found or key
        if found is None:
            return _unauthorized(
                request, UNKNOWN if sent else MISSING, "unknown" if sent else "missing"
            )
        request[CLIENT_KEY_ID] = found.id
        request[KEY_HEADERS] = frozenset(held_in)
        return await handler(request)

    return require_client_key


def client_key_headers(request: web.Request) -> frozenset[str]:
    """The request's headers that hold a client key: never forwarded anywhere."""
    return request.get(KEY_HEADERS, frozenset())


def _bearer(value: str) -> str:
    scheme, _, credentials = value.strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else value.strip()


def _twice(name: str, count: int) -> str:
    return f"ambiguous client key: send one {name} header, not {count}"


def _unauthorized(request: web.Request, message: str, reason: str) -> web.Response:
    api = api_for_path(request.path)
    body = api.render_error(401, message)
    if api is OPENAI_CHAT:
        body["error"]["code"] = "invalid_api_key"  # what OpenAI itself answers
    access_log.info("%s %s 401 client key %s", request.method, request.path, reason)
    return web.Response(
        body=orjson.dumps(body),
        status=401,
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="plano"'},
    )
