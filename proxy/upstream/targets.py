"""Where and how to call each configured provider, computed once at start-up."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy.config.model import ModelProvider
from proxy.embedded.forced_tool import local_request
from proxy.providers.catalog import Auth, Wire

ANTHROPIC_VERSION = "2023-06-01"
AZURE_API_VERSION = "2024-10-21"
Body = dict[str, Any]

# What a provider needs changed in a request before it gets it, by provider name: applied to
# the request body in the provider's wire, on the passthrough and the translated path alike.
_REQUEST_HOOKS: dict[str, Callable[[Body, str], Body]] = {"local": local_request}


def _unchanged(body: Body) -> Body:
    return body


# A base_url that already ends in an API version (/v1, /v1beta/openai, /api/paas/v4).
_VERSIONED = re.compile(r"/v\d+\w*(/openai)?/?$")


@dataclass(frozen=True, slots=True)
class Target:
    provider: ModelProvider
    wire: Wire
    url: str
    # Authentication and custom headers. Holds credentials: never log it.
    headers: dict[str, str] = field(repr=False)
    passthrough_auth: bool = False
    # The provider's request hook (see _REQUEST_HOOKS), bound to the model.
    adjust_request: Callable[[Body], Body] = _unchanged


# Provider wires the gateway has no adapter for yet.
_NO_ADAPTER = frozenset({Wire.BEDROCK, Wire.OPENAI_RESPONSES})


class TargetError(Exception):
    """A provider Plano cannot call (yet): reported by `plano up` before serving."""


def target_for(provider: ModelProvider, model_id: str | None = None) -> Target:
    spec = provider.spec
    if spec is None or not provider.base_url:
        raise TargetError(f"{provider.name}: no base_url to send requests to")
    if spec.wire in _NO_ADAPTER:  # refused at load too (proxy.config.served)
        raise TargetError(f"{provider.name}: {spec.name} is not supported by this gateway yet")
    base = provider.base_url.rstrip("/")
    wire = Wire.OPENAI if spec.wire is Wire.AZURE_OPENAI else spec.wire
    if spec.wire is Wire.AZURE_OPENAI:
        deployment = model_id or provider.model_id
        url = (
            f"{base}/openai/deployments/{deployment}/chat/completions"
            f"?api-version={AZURE_API_VERSION}"
        )
    else:
        version = "" if _VERSIONED.search(urlsplit(base).path) else "/v1"
        path = "/messages" if wire is Wire.ANTHROPIC else "/chat/completions"
        url = base + version + path
    headers = _auth_headers(spec.auth, provider)
    if wire is Wire.ANTHROPIC:
        headers["anthropic-version"] = ANTHROPIC_VERSION
    headers.update(provider.headers)  # custom headers come last, so they can override
    if provider.http_host:
        headers["Host"] = provider.http_host
    hook = _REQUEST_HOOKS.get(spec.name)
    adjust = (
        _unchanged
        if hook is None
        else functools.partial(hook, model_id=model_id or provider.model_id)
    )
    return Target(provider, wire, url, headers, provider.passthrough_auth, adjust)


def _auth_headers(auth: Auth, provider: ModelProvider) -> dict[str, str]:
    key = provider.access_key.reveal() if provider.access_key else ""
    if provider.passthrough_auth or not key or auth is Auth.NONE:
        return {}
    if auth is Auth.X_API_KEY:
        return {"x-api-key": key}
    if auth is Auth.API_KEY:
        return {"api-key": key}
    return {"Authorization": f"Bearer {key}"}


# Client headers forwarded when a provider has passthrough_auth: true.
PASSTHROUGH_AUTH_HEADERS = ("authorization", "x-api-key", "api-key")
