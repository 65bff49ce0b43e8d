"""List prices of common models, in US dollars per million tokens.

Used to rank a route's models by `selection_policy.prefer: cheapest` and to price each
request. Prices change: the table is a default, matched by provider/model id prefix so
that dated snapshots (gpt-4o-2024-08-06) find their family.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None

    @property
    def blended(self) -> float:
        """One number to compare models by: chat traffic runs about 3 input tokens per output."""
        return (3 * self.input_per_mtok + self.output_per_mtok) / 4


# Longest prefix wins. Keys are provider/model-id prefixes.
PRICES: dict[str, Price] = {
    "openai/gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "openai/gpt-4o": Price(2.50, 10.00, 1.25),
    "openai/gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "openai/gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "openai/gpt-4.1": Price(2.00, 8.00, 0.50),
    "openai/gpt-5-nano": Price(0.05, 0.40, 0.005),
    "openai/gpt-5-mini": Price(0.25, 2.00, 0.025),
    "openai/gpt-5": Price(1.25, 10.00, 0.125),
    "openai/o3-mini": Price(1.10, 4.40, 0.55),
    "openai/o4-mini": Price(1.10, 4.40, 0.275),
    "openai/o3": Price(2.00, 8.00, 0.50),
    "openai/o1": Price(15.00, 60.00, 7.50),
    "anthropic/claude-opus-4": Price(15.00, 75.00, 1.50),
    "anthropic/claude-sonnet-4": Price(3.00, 15.00, 0.30),
    "anthropic/claude-3-7-sonnet": Price(3.00, 15.00, 0.30),
    "anthropic/claude-3-5-sonnet": Price(3.00, 15.00, 0.30),
    "anthropic/claude-haiku-4": Price(1.00, 5.00, 0.10),
    "anthropic/claude-3-5-haiku": Price(0.80, 4.00, 0.08),
    "anthropic/claude-3-haiku": Price(0.25, 1.25, 0.03),
    "gemini/gemini-2.5-pro": Price(1.25, 10.00, 0.31),
    "gemini/gemini-2.5-flash-lite": Price(0.10, 0.40, 0.025),
    "gemini/gemini-2.5-flash": Price(0.30, 2.50, 0.075),
    "gemini/gemini-2.0-flash": Price(0.10, 0.40, 0.025),
    "deepseek/deepseek-chat": Price(0.27, 1.10, 0.07),
    "deepseek/deepseek-reasoner": Price(0.55, 2.19, 0.14),
    "mistral/mistral-large": Price(2.00, 6.00),
    "mistral/mistral-small": Price(0.10, 0.30),
    "mistral/codestral": Price(0.30, 0.90),
    "groq/llama-3.3-70b": Price(0.59, 0.79),
    "groq/llama-3.1-8b": Price(0.05, 0.08),
    "xai/grok-4": Price(3.00, 15.00, 0.75),
    "xai/grok-3-mini": Price(0.30, 0.50, 0.075),
    # Models that run on the user's own hardware cost nothing per token.
    "local/": Price(0.0, 0.0),
    "ollama/": Price(0.0, 0.0),
}

_BY_LENGTH = sorted(PRICES, key=len, reverse=True)


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of provider/model_id, or None when no table entry matches."""
    if overrides:
        for prefix in sorted(overrides, key=len, reverse=True):
            if model.startswith(prefix):
                return overrides[prefix]
    for prefix in _BY_LENGTH:
        if model.startswith(prefix):
            return PRICES[prefix]
    return None


def cost_usd(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    overrides: Mapping[str, Price] | None = None,
) -> float | None:
    """What a request cost at list price, or None when the model has no price.

    Cached input tokens are part of `input_tokens` (as providers report them) and are
    charged at the cached rate when the table has one.
    """
    price = price_for(model, overrides)
    if price is None:
        return None
    cached = min(max(cached_input_tokens, 0), max(input_tokens, 0))
    cached_rate = price.cached_input_per_mtok
    if cached_rate is None:
        cached_rate = price.input_per_mtok
    fresh = max(input_tokens, 0) - cached
    total = (
        fresh * price.input_per_mtok
        + cached * cached_rate
        + max(output_tokens, 0) * price.output_per_mtok
    )
    return total / 1_000_000
