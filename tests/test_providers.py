"""Per-provider wire details: URLs, auth headers, passthrough_auth, custom headers."""

from __future__ import annotations

import openai
import pytest
from fakes.providers import FakeProvider, openai_app
from fakes.server_thread import ServerThread
from proxy_harness import ProxyThread, config_from_yaml

from proxy.config import check_text
from proxy.upstream.targets import target_for


@pytest.fixture(scope="module")
def fake():
    state = FakeProvider()
    with ServerThread(openai_app(state)) as server:
        yield state, server.base_url


def _providers(yaml_providers: str, env: dict | None = None):
    text = f"version: v0.4.0\nlisteners: [{{type: model}}]\nmodel_providers:\n{yaml_providers}"
    result = check_text(text, env=env or {"K": "key-123"})
    assert result.ok, [p.message for p in result.errors]
    return result.config.providers


@pytest.mark.parametrize(
    ("provider", "url"),
    [
        ("{model: openai/gpt-4o, access_key: $K}", "https://api.openai.com/v1/chat/completions"),
        (
            "{model: anthropic/claude-sonnet-4-6, access_key: $K}",
            "https://api.anthropic.com/v1/messages",
        ),
        (
            "{model: gemini/gemini-2.5-pro, access_key: $K}",
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions",
        ),
        (
            "{model: groq/llama-3.1-8b-instant, access_key: $K}",
            "https://api.groq.com/openai/v1/chat/completions",
        ),
        (
            "{model: deepseek/deepseek-chat, access_key: $K}",
            "https://api.deepseek.com/v1/chat/completions",
        ),
        (
            "{model: mistral/mistral-small, access_key: $K}",
            "https://api.mistral.ai/v1/chat/completions",
        ),
        ("{model: xai/grok-4, access_key: $K}", "https://api.x.ai/v1/chat/completions"),
        (
            "{model: together_ai/openai/gpt-oss-20b, access_key: $K}",
            "https://api.together.xyz/v1/chat/completions",
        ),
        (
            "{model: openrouter/openai/gpt-4o, access_key: $K}",
            "https://openrouter.ai/api/v1/chat/completions",
        ),
        (
            "{model: ollama/llama3.1, base_url: 'http://localhost:11434'}",
            "http://localhost:11434/v1/chat/completions",
        ),
        (
            "{model: custom/m, base_url: 'http://h:9/api/v2', provider_interface: openai}",
            "http://h:9/api/v2/chat/completions",
        ),
        (
            "{model: azure_openai/gpt-4o-prod, access_key: $K, base_url: 'https://r.openai.azure.com'}",
            "https://r.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions"
            "?api-version=2024-10-21",
        ),
    ],
)
def test_urls(provider, url):
    (entry,) = _providers(f"  - {provider}\n")
    assert target_for(entry).url == url


def test_auth_styles():
    openai_entry, anthropic_entry, azure_entry, ollama_entry = _providers(
        "  - {model: openai/a, access_key: $K}\n"
        "  - {model: anthropic/b, access_key: $K}\n"
        "  - {model: azure_openai/c, access_key: $K, base_url: 'https://r.openai.azure.com'}\n"
        "  - {model: ollama/d, base_url: 'http://localhost:11434'}\n"
    )
    assert target_for(openai_entry).headers == {"Authorization": "Bearer key-123"}
    assert target_for(anthropic_entry).headers == {
        "x-api-key": "key-123",
        "anthropic-version": "2023-06-01",
    }
    assert target_for(azure_entry).headers == {"api-key": "key-123"}
    assert target_for(ollama_entry).headers == {}
    assert "key-123" not in repr(target_for(openai_entry))


def test_azure_round_trip_and_custom_headers(fake):
    state, url = fake
    state.clear()
    config = config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{type: model}}]
        model_providers:
          - model: azure_openai/gpt-4o-prod
            base_url: {url}
            access_key: $K
            http_host: myresource.openai.azure.com
            headers: {{X-Team: platform, User-Agent: plano-test}}
        """,
        env={"K": "azure-key"},
    )
    with ProxyThread(config) as proxy:
        reply = openai.OpenAI(
            base_url=f"{proxy.url}/v1", api_key="x", max_retries=0
        ).chat.completions.create(model="gpt-4o-prod", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo: hi"
    sent = state.last
    assert sent.path == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "azure-key"
    assert sent.headers["host"] == "myresource.openai.azure.com"
    assert sent.headers["x-team"] == "platform"
    assert sent.headers["user-agent"] == "plano-test"


def test_passthrough_auth_forwards_the_client_key(fake):
    state, url = fake
    state.clear()
    config = config_from_yaml(f"""\
        version: v0.4.0
        listeners: [{{type: model}}]
        model_providers:
          - {{model: openai/gpt-4o, base_url: "{url}/v1", passthrough_auth: true,
             access_key: ignored-key}}
        """)
    with ProxyThread(config) as proxy:
        openai.OpenAI(
            base_url=f"{proxy.url}/v1", api_key="client-virtual-key", max_retries=0
        ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert state.last.headers["authorization"] == "Bearer client-virtual-key"


def test_wildcard_provider_takes_any_model(fake):
    state, url = fake
    state.clear()
    config = config_from_yaml(
        f"""\
        version: v0.4.0
        listeners: [{{type: model}}]
        model_providers:
          - {{model: openai/*, base_url: "{url}/v1", access_key: $K}}
          - {{model: openai/gpt-4o, base_url: "{url}/v1", access_key: $K, default: true}}
        """,
        env={"K": "k"},
    )
    with ProxyThread(config) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        client.chat.completions.create(
            model="openai/o3-mini", messages=[{"role": "user", "content": "x"}]
        )
        assert state.last.body["model"] == "o3-mini"
        with pytest.raises(openai.BadRequestError):  # a bare id matches no wildcard
            client.chat.completions.create(
                model="o3-mini", messages=[{"role": "user", "content": "x"}]
            )
