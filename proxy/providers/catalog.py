"""What Plano knows about each provider by name: wire protocol, auth, default base URL."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Wire(StrEnum):
    """Upstream wire protocols; each gets one adapter."""

    OPENAI = "openai"  # OpenAI Chat Completions (and compatible servers)
    ANTHROPIC = "anthropic"  # Anthropic Messages
    AZURE_OPENAI = "azure_openai"  # OpenAI wire, deployment path and api-key header
    BEDROCK = "bedrock"  # Amazon Bedrock Converse
    OPENAI_RESPONSES = "openai_responses"  # OpenAI Responses (the ChatGPT Codex backend)


class Auth(StrEnum):
    BEARER = "bearer"  # Authorization: Bearer <key>
    X_API_KEY = "x-api-key"  # Anthropic: x-api-key + anthropic-version
    API_KEY = "api-key"  # Azure OpenAI
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    wire: Wire
    auth: Auth
    base_url: str | None = None
    needs_base_url: bool = False
    # A key is expected unless the provider is local or passthrough_auth is on.
    needs_key: bool = True


_SPECS = (
    ProviderSpec("openai", Wire.OPENAI, Auth.BEARER, "https://api.openai.com/v1"),
    ProviderSpec("anthropic", Wire.ANTHROPIC, Auth.X_API_KEY, "https://api.anthropic.com/v1"),
    ProviderSpec(
        "gemini",
        Wire.OPENAI,
        Auth.BEARER,
        "https://generativelanguage.googleapis.com/v1beta/openai",
    ),
    ProviderSpec("groq", Wire.OPENAI, Auth.BEARER, "https://api.groq.com/openai/v1"),
    ProviderSpec("deepseek", Wire.OPENAI, Auth.BEARER, "https://api.deepseek.com/v1"),
    ProviderSpec("mistral", Wire.OPENAI, Auth.BEARER, "https://api.mistral.ai/v1"),
    ProviderSpec("xai", Wire.OPENAI, Auth.BEARER, "https://api.x.ai/v1"),
    ProviderSpec("together_ai", Wire.OPENAI, Auth.BEARER, "https://api.together.xyz/v1"),
    ProviderSpec("openrouter", Wire.OPENAI, Auth.BEARER, "https://openrouter.ai/api/v1"),
    ProviderSpec("moonshotai", Wire.OPENAI, Auth.BEARER, "https://api.moonshot.ai/v1"),
    ProviderSpec("zhipu", Wire.OPENAI, Auth.BEARER, "https://open.bigmodel.cn/api/paas/v4"),
    ProviderSpec("digitalocean", Wire.OPENAI, Auth.BEARER, "https://inference.do-ai.run/v1"),
    ProviderSpec("vercel", Wire.OPENAI, Auth.BEARER, "https://ai-gateway.vercel.sh/v1"),
    ProviderSpec("azure_openai", Wire.AZURE_OPENAI, Auth.API_KEY, needs_base_url=True),
    ProviderSpec("qwen", Wire.OPENAI, Auth.BEARER, needs_base_url=True),
    ProviderSpec("amazon_bedrock", Wire.BEDROCK, Auth.BEARER, needs_base_url=True),
    ProviderSpec("ollama", Wire.OPENAI, Auth.NONE, needs_base_url=True, needs_key=False),
    # Models `plano up` serves itself through llama.cpp (proxy.embedded); a base_url
    # points at a llama.cpp server of your own instead.
    ProviderSpec("local", Wire.OPENAI, Auth.NONE, needs_key=False),
    # A ChatGPT Plus/Pro subscription: the Responses API of ChatGPT's Codex backend, with an
    # OAuth token from a device login (upstream: `planoai chatgpt login`) instead of a key.
    # Known so upstream configs validate; `plano up` refuses it until it is served.
    ProviderSpec(
        "chatgpt",
        Wire.OPENAI_RESPONSES,
        Auth.BEARER,
        "https://chatgpt.com/backend-api/codex",
        needs_key=False,
    ),
    # Plano's own router/orchestrator models, served locally (Ollama, vLLM).
    ProviderSpec("plano", Wire.OPENAI, Auth.BEARER, needs_base_url=True, needs_key=False),
    ProviderSpec("arch", Wire.OPENAI, Auth.BEARER, needs_base_url=True, needs_key=False),
)

PROVIDERS: dict[str, ProviderSpec] = {spec.name: spec for spec in _SPECS}

# provider_interface values (upstream's names) -> the known provider whose protocol they mean.
INTERFACES: dict[str, str] = {
    "openai": "openai",
    "claude": "anthropic",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral",
    "xai": "xai",
    "together_ai": "together_ai",
    "openrouter": "openrouter",
    "moonshotai": "moonshotai",
    "digitalocean": "digitalocean",
    "vercel": "vercel",
    "ollama": "ollama",
    "plano": "plano",
    "chatgpt": "chatgpt",  # the subscription provider, not an OpenAI-compatible server
    # OpenAI-compatible services upstream names; they take base_url from the config.
    "xiaomi": "openai",
}


def spec_for(provider: str, interface: str | None = None) -> ProviderSpec | None:
    """The spec for a provider prefix; an explicit provider_interface wins."""
    if interface is not None:
        return PROVIDERS.get(INTERFACES.get(interface, ""))
    return PROVIDERS.get(provider)
