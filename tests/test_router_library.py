"""The built-in library of example prompts, how routes borrow from it, and the request part
of prompts that bring their own material."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_dir
from hypothesis import given
from hypothesis import strategies as st

from proxy.routing.embedded import EmbeddedRouter, RouteText
from proxy.routing.embedded.instruction import instruction
from proxy.routing.embedded.library import LIBRARY, lenders
from proxy.routing.embedded.router import route_units

DATA = Path(__file__).resolve().parent / "data"
# Closer than this to an eval prompt, a library example would be that prompt reworded: the
# eval would then measure recall of the library, not routing.
NEAR_DUPLICATE = 0.8


@pytest.fixture(scope="module")
def router() -> EmbeddedRouter:
    return EmbeddedRouter.load()


def eval_prompts() -> list[str]:
    ours = ("routing_heldout.jsonl", "routing_fewroutes.jsonl", "routing_domains.jsonl")
    files = [DATA / n for n in ours]
    files += [shared_dir() / "data" / n for n in ("clinc150_val.jsonl", "tasks_dev.jsonl")]
    return [
        json.loads(line)["text"]
        for path in files
        if path.is_file()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def test_no_library_example_rewords_an_eval_prompt(router):
    examples = [ex for kind in LIBRARY for ex in kind.examples]
    prompts = eval_prompts()
    similarity = router.encoder.encode(examples) @ router.encoder.encode(prompts).T
    close = [
        (examples[i], prompts[int(similarity[i].argmax())], round(float(similarity[i].max()), 2))
        for i in range(len(examples))
        if similarity[i].max() >= NEAR_DUPLICATE
    ]
    assert close == []


def test_the_library_is_broad():
    names = {kind.name for kind in LIBRARY}
    assert {
        "code generation",
        "debugging",
        "math",
        "reasoning and analysis",
        "creative writing",
        "summarization",
        "translation",
        "extraction",
        "chit-chat",
    } <= names
    assert all(len(kind.examples) >= 12 for kind in LIBRARY)
    examples = [ex for kind in LIBRARY for ex in kind.examples]
    assert len(set(examples)) == len(examples)


def phrases(*descriptions: str) -> list[list[str]]:
    """Each description's phrases, as the router reads them."""
    return [[unit[0] for unit in route_units(RouteText("", d))] for d in descriptions]


def test_terse_task_routes_borrow_their_type_and_topics_borrow_nothing(router):
    lent = lenders(
        phrases("code generation and debugging", "cooking, recipes and restaurants", "poems"),
        router.encoder.encode,
    )
    names = {route: sorted(LIBRARY[k].name for k in kinds) for route, kinds in lent.items()}
    assert names[0] == ["code generation", "debugging"]
    assert 1 not in names


def test_a_type_lends_to_one_route_of_a_set(router):
    lent = lenders(phrases("write code for me", "code generation"), router.encoder.encode)
    kinds = [k for ks in lent.values() for k in ks]
    assert len(kinds) == len(set(kinds))
    code = next(i for i, kind in enumerate(LIBRARY) if kind.name == "code generation")
    assert code in lent.get(1, [])  # the exact signature wins over a paraphrase


def test_borrowed_examples_route_wording_the_description_never_used(router):
    routes = (
        RouteText("code_generation", "generating new code, writing functions"),
        RouteText("writing", "stories and poems"),
    )
    prompt = [("user", "set up a scheduler in Node that retries failed jobs")]
    without = EmbeddedRouter(router.encoder, library=())
    assert without.score(prompt, routes).route == "writing"  # what the library fixes
    assert router.score(prompt, routes).route == "code_generation"
    assert router.score([("user", "good morning! how are you?")], routes).route is None


def test_a_route_without_a_type_borrows_nothing(router):
    library_less = EmbeddedRouter(router.encoder, library=())
    routes = (RouteText("kitchen", "cooking, recipes and restaurants"), RouteText("cars", "cars"))
    assert len(router.index(routes).prototypes) == len(library_less.index(routes).prototypes)
    prompt = [("user", "how long do I roast a chicken")]
    assert router.score(prompt, routes).route == library_less.score(prompt, routes).route


def test_types_no_route_claims_join_the_reject_class(router):
    routes = (RouteText("kitchen", "cooking, recipes and restaurants"), RouteText("cars", "cars"))
    library_less = EmbeddedRouter(router.encoder, library=())
    assert len(router.index(routes).background) > len(library_less.index(routes).background)
    poem = [("user", "write a limerick about a sleepy owl")]
    assert (
        router.score(poem, routes).scores["kitchen"]
        < library_less.score(poem, routes).scores["kitchen"]
    )


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        (
            "Summarize this for me: " + "the council voted to widen the bridge " * 3,
            "Summarize this for me",
        ),
        (
            "Translate into French\nWe will ship the order on Monday morning, weather permitting.",
            "Translate into French",
        ),
        ("Translate: hello there", None),  # too little material: one short request
        ("what time is it in Tokyo", None),
        (
            "a sentence that runs on for far too many words before it reaches any colon at all: "
            "then some material follows here for a while longer",
            None,
        ),
    ],
)
def test_the_request_before_the_material(text, asked):
    assert instruction(text) == asked


@pytest.mark.parametrize(
    "text",
    [
        "Condense this into two lines: the hiking club meets every Saturday at the north "
        "trailhead, bring water, sunscreen and a packed lunch, and carpools leave at 7.",
        "Main points?\nThe hiking club meets every Saturday at the north trailhead. Bring "
        "water, sunscreen and a packed lunch. Carpools leave from the library at 7.",
    ],
)
def test_a_request_with_material_routes_by_the_request(router, monkeypatch, text):
    from proxy.routing.embedded import router as router_module

    routes = (
        RouteText("summarization", "summarizing or condensing a text into its key points"),
        RouteText("code", "writing code"),
        RouteText("translation", "translating text into another language"),
    )
    assert router.score([("user", text)], routes).route == "summarization"
    monkeypatch.setattr(router_module, "instruction", lambda text: None)
    fresh = EmbeddedRouter(router.encoder)  # the hiking club alone routes nowhere
    assert fresh.score([("user", text)], routes).route is None


@given(st.text(alphabet=st.sampled_from("ab :\n\t.,?"), max_size=400))
def test_the_request_is_a_short_head_of_the_prompt_before_its_material(text):
    asked = instruction(text)
    if asked is None:
        return
    assert text.startswith(asked) or text.lstrip().startswith(asked)
    assert 1 <= len(asked.split()) <= 14
    rest = text[text.index(asked) + len(asked) :]
    assert rest[:1] in (":", "\n") or rest.lstrip(" \t")[:1] in (":", "\n")
