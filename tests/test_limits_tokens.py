"""Input-token counts: gpt-4o's own, offline.

The two requests and their `usage.prompt_tokens` are the ones OpenAI's cookbook ("How to
count tokens with tiktoken") published from the real gpt-4o API: 124 and 101.
"""

from __future__ import annotations

import pytest

from proxy.limits import tokens
from proxy.limits.tokens import RanksUnavailable, TokenCounter, counter, packaged_ranks
from proxy.wire import openai_chat

JARGON = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def chat(**body):
    return openai_chat.parse_request({"model": "gpt-4o", **body})


def test_the_encoding_is_o200k_base_from_the_package_offline():
    c = counter()
    assert c.exact
    assert "quicktok-v1" in c.source
    # The cookbook's o200k_base ids for this text.
    assert c._encode("お誕生日おめでとう") == [8930, 9697, 243, 128225, 8930, 17693, 4344, 48669]


@pytest.mark.parametrize(
    ("body", "gpt_4o_prompt_tokens"),
    [({"messages": JARGON}, 124), ({"messages": WEATHER, "tools": WEATHER_TOOLS}, 101)],
)
def test_counts_match_gpt_4o_usage(body, gpt_4o_prompt_tokens):
    assert counter().request(chat(**body)) == gpt_4o_prompt_tokens


async def test_large_requests_are_counted_off_the_loop_alike():
    text = "Plano counts tokens. " * 20_000  # past INLINE_CHARS
    request = chat(messages=[{"role": "user", "content": text}])
    assert await counter().request_async(request) == counter().request(request)


def test_a_changed_ranks_file_is_refused(tmp_path):
    good = packaged_ranks()
    bad = tmp_path / "o200k.vocab"
    first = next(iter(good))
    # Same format, one rank swapped: the SHA-256 tiktoken expects no longer matches.
    body = b"".join(
        len(t).to_bytes(2, "little") + t + (r if t != first else 5).to_bytes(4, "little")
        for t, r in good.items()
    )
    bad.write_bytes(len(good).to_bytes(4, "little") + body)
    with pytest.raises(RanksUnavailable, match="SHA-256"):
        packaged_ranks(bad)
    bad.write_bytes(b"\x01\x00")
    with pytest.raises(RanksUnavailable):
        packaged_ranks(bad)


def test_without_any_encoding_the_estimate_counts_high_for_prose(monkeypatch):
    estimate = TokenCounter(None, "estimate")
    prose = "The quick brown fox jumps over the lazy dog while the band plays on. " * 20
    assert estimate.text(prose) >= counter().text(prose)
    monkeypatch.setattr(tokens, "RANKS_PACKAGE", "no_such_package_here")
    monkeypatch.setattr(tokens, "_tiktoken_own", lambda: None)
    assert not tokens.load_counter().exact
