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
from proxy.routing.embedded.library import DOMAINS, LIBRARY, TASK_TYPES, lenders
from proxy.routing.embedded.router import lending_phrases

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
    names = [kind.name for kind in LIBRARY]
    assert len(set(names)) == len(names)
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
    } <= {kind.name for kind in TASK_TYPES}
    assert {
        "banking",
        "credit cards",
        "insurance",
        "cooking",
        "restaurants and food delivery",
        "shopping and orders",
        "smart home",
        "music and media playback",
        "travel",
        "weather",
        "workplace and HR",
        "IT and tech support",
        "accounts and subscriptions",
        "health and symptoms",
        "legal questions",
        "assistant settings",
    } <= {kind.name for kind in DOMAINS}
    assert len(DOMAINS) >= 30
    assert LIBRARY == TASK_TYPES + DOMAINS
    assert all(len(kind.examples) >= 12 for kind in TASK_TYPES)
    # Deep enough that a route borrowing a domain meets each of its sub-topics, and the
    # chit-chat type covers talk with the assistant itself.
    assert all(len(kind.examples) >= 30 and 5 <= len(kind.signatures) <= 10 for kind in DOMAINS)
    assert len(next(k for k in TASK_TYPES if k.name == "chit-chat").examples) >= 30
    examples = [ex for kind in LIBRARY for ex in kind.examples]
    assert len(set(examples)) == len(examples)


def phrases(*descriptions: str):
    """Each description's phrases, as the router reads them."""
    return [lending_phrases(RouteText("route", d)) for d in descriptions]


def lent_names(lent: dict[int, list[int]]) -> dict[int, list[str]]:
    return {route: sorted(LIBRARY[k].name for k in kinds) for route, kinds in lent.items()}


def test_terse_task_routes_borrow_their_type_and_topics_their_domain(router):
    lent = lent_names(
        lenders(
            phrases(
                "code generation and debugging",
                "cooking, recipes and restaurants",
                "questions about medieval heraldry",
            ),
            router.encoder.encode,
        )
    )
    assert lent[0] == ["code generation", "debugging"]
    assert lent[1] == ["cooking", "restaurants and food delivery"]  # not code
    assert 2 not in lent  # no domain covers heraldry


@pytest.mark.parametrize("domain", DOMAINS, ids=lambda d: d.name)
def test_each_domain_is_lent_by_its_own_words_alone(router, domain):
    """Described by any one of a domain's signatures, a route borrows that domain, and no
    other: two domains never both fit one narrow route."""
    lent = lenders(phrases(*domain.signatures), router.encoder.encode, DOMAINS)
    assert {k for kinds in lent.values() for k in kinds} == {DOMAINS.index(domain)}


def test_a_task_route_is_not_about_the_material_it_lists(router):
    """The "email" of a summarization route is what gets summarized: not an email route."""
    lent = lent_names(
        lenders(
            phrases(
                "summarizing or condensing a text, article, email or document into key points",
                "checking the weather",
            ),
            router.encoder.encode,
        )
    )
    assert lent[0] == ["summarization"]
    alone = lent_names(lenders(phrases("email, calls and text messages"), router.encoder.encode))
    assert alone[0] == ["email, calls and messages"]


def test_a_type_lends_to_one_route_of_a_set(router):
    lent = lenders(
        phrases("write code for me", "code generation", "banking and payments", "bank accounts"),
        router.encoder.encode,
    )
    kinds = [k for ks in lent.values() for k in ks]
    assert len(kinds) == len(set(kinds))
    code = next(i for i, kind in enumerate(LIBRARY) if kind.name == "code generation")
    assert code in lent.get(1, [])  # the exact signature wins over a paraphrase
    names = lent_names(lent)
    assert "banking" in names[2] + names.get(3, [])


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
    routes = (
        RouteText("heraldry", "questions about medieval heraldry"),
        RouteText("knots", "sailing knots"),
    )
    assert len(router.index(routes).prototypes) == len(library_less.index(routes).prototypes)
    prompt = [("user", "what does a lion rampant on a shield mean")]
    assert router.score(prompt, routes).route == library_less.score(prompt, routes).route


@pytest.mark.parametrize("text", ["is the back door bolted", "make it warmer in here, 72 please"])
def test_a_domain_route_borrows_wording_its_description_never_used(router, text):
    routes = (
        RouteText("money", "banking"),
        RouteText("devices", "smart home"),
        RouteText("trips", "travel"),
        RouteText("law", "legal questions"),
        RouteText("animals", "pets"),
    )
    prompt = [("user", text)]
    without = EmbeddedRouter(router.encoder, library=TASK_TYPES)
    assert without.score(prompt, routes).route != "devices"  # what the domains fix
    assert router.score(prompt, routes).route == "devices"


def test_a_route_lent_several_domains_pools_each_apart(router):
    """A "home" route lent music, lists and smart home is not diluted by their number: a
    music prompt scores there as on a route lent music alone."""
    many = RouteText("home", "music playback, the calendar and smart home devices")
    alone = RouteText("home", "music playback")
    lent = lent_names(lenders([lending_phrases(many)], router.encoder.encode))[0]
    assert len(lent) == 3
    index = router.index((many,))
    assert len(index.starts) == 1 + len(lent)  # its own words, then one segment a domain
    music = router._embed_queries(["put on something by Miles Davis"])
    borrowed = index.raw(music)[0, 0]
    assert borrowed == pytest.approx(router.index((alone,)).raw(music)[0, 0], abs=0.02)


def test_types_no_route_claims_join_the_reject_class(router):
    routes = (RouteText("kitchen", "cooking, recipes and restaurants"), RouteText("cars", "cars"))
    library_less = EmbeddedRouter(router.encoder, library=())
    task_types_only = EmbeddedRouter(router.encoder, library=TASK_TYPES)
    sizes = [len(r.index(routes).background) for r in (router, task_types_only, library_less)]
    assert sizes[0] > sizes[1] > sizes[2]
    poem = [("user", "write a limerick about a sleepy owl")]
    assert (
        router.score(poem, routes).scores["kitchen"]
        < library_less.score(poem, routes).scores["kitchen"]
    )
    # The weather domain is claimed by neither route: its examples are "none of these" for
    # them. Against a library of just the types the routes borrow (the same prototypes), a
    # forecast prompt's match to cars is discounted by them.
    lent = lenders([lending_phrases(r) for r in routes], router.encoder.encode)
    claimed = tuple(LIBRARY[k] for kinds in lent.values() for k in kinds)
    assert "weather" not in {kind.name for kind in claimed}
    claimed_only = EmbeddedRouter(router.encoder, library=claimed)
    forecast = router._embed_queries(["is it going to be windy at the lake on sunday"])
    full, narrow = router.index(routes), claimed_only.index(routes)
    assert len(full.prototypes) == len(narrow.prototypes)
    cars = 1
    assert full.signal(forecast)[0, cars] < narrow.signal(forecast)[0, cars] - 0.05
    assert router.score([("user", "will it hail tonight")], routes).route is None


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
    asked = router.score([("user", text)], routes)
    assert asked.route == "summarization"
    monkeypatch.setattr(router_module, "instruction", lambda text: None)
    fresh = EmbeddedRouter(router.encoder)
    # The hiking club alone is at best a weak match (around the threshold, where a few
    # library examples more or less tip it); the request makes it a clear one.
    whole = fresh.score([("user", text)], routes).scores["summarization"]
    assert whole < 1.0
    assert asked.scores["summarization"] - whole > 2.0


@given(st.text(alphabet=st.sampled_from("ab :\n\t.,?"), max_size=400))
def test_the_request_is_a_short_head_of_the_prompt_before_its_material(text):
    asked = instruction(text)
    if asked is None:
        return
    assert text.startswith(asked) or text.lstrip().startswith(asked)
    assert 1 <= len(asked.split()) <= 14
    rest = text[text.index(asked) + len(asked) :]
    assert rest[:1] in (":", "\n") or rest.lstrip(" \t")[:1] in (":", "\n")
