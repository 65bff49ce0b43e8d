"""The price table: prefix matching, overrides, and what a request costs."""

from __future__ import annotations

import pytest

from proxy.pricing import Price, cost_usd, price_for


def test_longest_prefix_wins_for_dated_snapshots():
    assert price_for("openai/gpt-4o-mini-2024-07-18") == price_for("openai/gpt-4o-mini")
    assert price_for("openai/gpt-4o-2024-08-06").input_per_mtok == 2.50
    assert price_for("mystery/model") is None


def test_local_models_are_free():
    assert cost_usd("local/smollm2-135m", 1000, 1000) == 0.0


def test_cost_charges_cached_input_at_the_cached_rate():
    # gpt-4o: $2.50 in, $1.25 cached in, $10 out per million tokens.
    cost = cost_usd("openai/gpt-4o", 1_000_000, 100_000, cached_input_tokens=400_000)
    assert cost == pytest.approx(0.6 * 2.50 + 0.4 * 1.25 + 0.1 * 10.00)


def test_cost_without_a_cached_rate_uses_the_input_rate():
    cost = cost_usd("mistral/mistral-large-latest", 2_000_000, 0, cached_input_tokens=1_000_000)
    assert cost == pytest.approx(2 * 2.00)


def test_unknown_model_has_no_cost_and_overrides_win():
    assert cost_usd("acme/big", 10, 10) is None
    mine = {"acme/": Price(1.0, 2.0)}
    assert cost_usd("acme/big", 1_000_000, 1_000_000, overrides=mine) == pytest.approx(3.0)
    assert price_for("openai/gpt-4o", {"openai/gpt-4o": Price(0.0, 0.0)}).blended == 0.0


def test_blended_price_orders_models_by_typical_cost():
    assert price_for("openai/gpt-4o-mini").blended < price_for("openai/gpt-4o").blended
