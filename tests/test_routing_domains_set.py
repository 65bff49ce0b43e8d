"""The held-out domain set (tests/data/routing_domains*): its shape, its three description styles,
and that its prompts do not repeat each other across labels.

It was written without seeing the router's domain library, to measure that library on prompts its
author never saw; these tests keep the set what it claims to be, not the router's accuracy on it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from proxy.config import check_file
from proxy.routing.embedded import EmbeddedRouter

DATA = Path(__file__).resolve().parent / "data"
PROMPTS = DATA / "routing_domains.jsonl"
STYLES = ("routing_domains_routes.yaml", "routing_domains_routes_terse.yaml")
STYLES += ("routing_domains_routes_first_person.yaml",)
PER_ROUTE = 20
OUT_OF_SCOPE = 40
# Closer than this, two prompts with different labels would be one prompt labeled twice.
NEAR_DUPLICATE = 0.8


def rows() -> list[dict]:
    lines = PROMPTS.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def route_names(name: str) -> list[str]:
    result = check_file(DATA / name, env={"OPENAI_API_KEY": "unused"}, strict=True)
    assert result.ok, [p.message for p in result.problems]
    assert result.config is not None
    return [route.name for route in result.config.routes]


@pytest.mark.parametrize("name", STYLES)
def test_each_style_is_a_valid_config_with_the_same_ten_routes(name):
    names = route_names(name)
    assert len(names) == 10
    assert names == route_names(STYLES[0])


def test_terse_descriptions_are_terse():
    text = (DATA / STYLES[1]).read_text(encoding="utf-8")
    descriptions = [
        line.split("description:", 1)[1] for line in text.splitlines() if "description:" in line
    ]
    assert len(descriptions) == 10
    assert all(4 <= len(d.split()) <= 8 for d in descriptions)


def test_ten_routes_of_twenty_and_forty_out_of_scope():
    counts = Counter(row["route"] for row in rows())
    assert counts.pop("other") == OUT_OF_SCOPE
    assert set(counts) == set(route_names(STYLES[0]))
    assert set(counts.values()) == {PER_ROUTE}
    texts = [row["text"].strip().lower() for row in rows()]
    assert len(set(texts)) == len(texts)


def test_no_prompt_rewords_one_with_another_label():
    labeled = rows()
    encoded = EmbeddedRouter.load().encoder.encode([row["text"] for row in labeled])
    similarity = encoded @ encoded.T
    close = [
        (labeled[i]["text"], labeled[j]["text"], round(float(similarity[i, j]), 2))
        for i in range(len(labeled))
        for j in range(i + 1, len(labeled))
        if labeled[i]["route"] != labeled[j]["route"] and similarity[i, j] >= NEAR_DUPLICATE
    ]
    assert close == []
