"""`plano route --learn`: examples per route from a real SQLite trace store, the file it
writes, and `plano up`'s router loading it (opt-in, said in the start-up notes)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from typer.testing import CliRunner

from plano_cli.app import app
from proxy.config import check_text
from proxy.routing.embedded import EmbeddedRouter, RouteText
from proxy.routing.embedded.library import TASK_TYPES
from proxy.routing.learn import Sample, learn, read_samples
from proxy.routing.learned import LearnedRoute, LearnedRoutes, read_learned, write_learned
from proxy.routing.setup import build_routing
from proxy.telemetry.store import RequestRow, StoreBatch, TraceStore

ROUTES = (
    RouteText("kitchen", "cooking and recipes"),
    RouteText("cars", "cars and driving"),
)
HEADER = """\
version: v0.4.0
listeners: [{type: model, port: 12000}]
model_providers:
  - {model: openai/gpt-4o-mini, access_key: k, default: true}
  - {model: openai/gpt-4o, access_key: k}
routing_preferences:
"""
CONFIG = (
    HEADER
    + """\
  - {name: kitchen, description: cooking and recipes, models: [openai/gpt-4o]}
  - {name: cars, description: cars and driving, models: [openai/gpt-4o]}
"""
)
# Prompts the routes' words do not name; traffic that teaches them.
KITCHEN = [
    "how long should a roast chicken rest before carving",
    "what can I use instead of buttermilk in pancakes",
    "is it safe to refreeze thawed ground beef",
    "how do I keep risotto from getting gluey",
]
CARS = [
    "my car makes a grinding noise when I brake",
    "tips for driving a car on icy roads",
    "should I buy a used car or lease a new one",
    "how often does a car need an oil change",
    "my car won't start on cold mornings",
    "is it bad to drive my car with the tire pressure light on",
    "what does the check engine light on my car mean",
]


@pytest.fixture(scope="module")
def router() -> EmbeddedRouter:
    return EmbeddedRouter.load()


def row(n: int, text: str | None, *, age_s: float = 0, **fields) -> RequestRow:
    messages = None
    if text is not None:
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    return RequestRow(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        started_at=time.time() - age_s,
        status=200,
        outcome="ok",
        request_messages=messages,
        **fields,
    )


def seed(path, rows) -> None:
    with TraceStore.open(path) as store:
        store.write(StoreBatch(requests=rows))


def test_samples_carry_the_router_llms_label_only_when_it_decided(tmp_path):
    store = tmp_path / "traces.db"
    seed(
        store,
        [
            row(1, "what should I cook tonight", route="kitchen", router_backend="ollama"),
            row(2, "fix my brakes", route="cars", router_backend="openai-compatible"),
            row(3, "tell me about pasta", route="kitchen", router_backend="embedded"),
            row(
                4,
                "where do I park",
                route=None,
                router_backend="ollama",
                routing_fallback="timeout",
            ),
            row(5, None, route="cars", router_backend="ollama"),  # no messages captured
            row(6, "ok", router_backend="embedded"),  # too short to teach anything
            row(7, "an old prompt about soup", age_s=3 * 86400, router_backend="embedded"),
        ],
    )
    samples = read_samples(store, since=time.time() - 86400)
    labels = {s.text: s.llm_route for s in samples}
    assert labels == {
        "what should I cook tonight": "kitchen",
        "fix my brakes": "cars",
        "tell me about pasta": None,  # the embedded router decided: no label
        "where do I park": None,  # the LLM failed: the fallback is no label
    }
    assert len(read_samples(store)) == 5


def test_the_llms_labels_win_and_self_training_keeps_only_sure_prompts(router):
    samples = [
        # The LLM's label stands even where the embedded router would disagree.
        Sample("my engine makes a knocking noise when I accelerate", 0, llm_route="kitchen"),
        Sample("book a table for two", 0, llm_route="restaurants"),  # not a config route
        *(Sample(text, 0) for text in KITCHEN + CARS),
        Sample("what is the meaning of life", 0),
    ]
    learned = learn(router, ROUTES, samples, learned_at=1.0)
    kitchen, cars = learned.routes["kitchen"], learned.routes["cars"]
    assert kitchen.examples[0] == "my engine makes a knocking noise when I accelerate"
    assert kitchen.from_llm == 1
    assert "restaurants" not in learned.routes
    assert set(kitchen.examples[1:]) <= set(KITCHEN)
    assert set(cars.examples) <= set(CARS)
    assert cars.self_trained == len(cars.examples) > 0
    everything = [e for r in learned.routes.values() for e in r.examples]
    assert "what is the meaning of life" not in everything
    assert learned.prompts_read == len(samples)


def test_learned_prompts_route_wording_the_description_did_not_have(router):
    taught = (ROUTES[0], RouteText("cars", "cars and driving", (), tuple(CARS)))
    # Without the library's domains: its cars domain would lend the route this wording too.
    task_types_only = EmbeddedRouter(router.encoder, library=TASK_TYPES)

    def route(routes, text):
        return task_types_only.score([("user", text)], routes).route

    assert route(ROUTES, "how do I jump start a dead battery") is None
    assert route(taught, "how do I jump start a dead battery") == "cars"
    assert route(taught, "what is the meaning of life") is None


def test_the_file_round_trips_and_rejects_what_it_cannot_read(tmp_path):
    path = tmp_path / "learned.json"
    learned = LearnedRoutes({"cars": LearnedRoute(("a b", "c d"), 1, 1)}, 5.0, 9)
    write_learned(path, learned)
    assert read_learned(path) == learned
    path.write_text('{"format": 1, "routes": {"cars": {"examples": "not a list"}}}')
    with pytest.raises(ValueError, match="cars"):
        read_learned(path)


@pytest.mark.parametrize(
    "learned_at", ["1e300", "-1e300", "Infinity", "NaN", "1" + "0" * 400, "-5"]
)
def test_a_learned_at_time_cannot_print_is_unknown_not_a_crash(tmp_path, learned_at):
    """`plano up` prints when the file was learned: a time localtime() refuses must not stop
    the gateway from starting."""
    path = tmp_path / "learned.json"
    path.write_text(
        '{"format": 1, "learned_at": ' + learned_at + ', "routes": {"cars": {"examples": ["a b"]}}}'
    )
    learned = read_learned(path)
    assert learned.learned_at == 0.0
    assert learned.routes["cars"].examples == ("a b",)


@pytest.mark.parametrize("route", ['"text"', "[1, 2]", "null", '{"examples": [1]}'])
def test_a_learned_route_that_is_not_an_object_of_texts_is_refused(tmp_path, route):
    path = tmp_path / "learned.json"
    path.write_text('{"format": 1, "routes": {"cars": ' + route + "}}")
    with pytest.raises(ValueError, match="cars"):
        read_learned(path)


# Routes named for who handles a request, not for what it is about: their words say nothing
# the router or its library could match, so only traffic labeled by the router LLM teaches
# them which requests are theirs.
TEAMS_CONFIG = (
    HEADER
    + """\
  - {name: blue, description: requests for the blue team, models: [openai/gpt-4o]}
  - {name: red, description: requests for the red team, models: [openai/gpt-4o]}
"""
)
GARDEN = [
    "when should I plant tomato seedlings outside",
    "my tomato plants have yellow leaves",
    "how deep do I plant tulip bulbs",
    "what is eating the leaves of my roses",
    "how often should I water a vegetable garden",
]
KNITTING = [
    "how do I cast on for a knitted scarf",
    "what yarn weight is best for a baby blanket",
    "how do I knit a cable pattern",
    "what needle size for chunky wool",
    "how do I fix a dropped stitch in my sweater",
]


def test_cli_learns_from_the_store_and_reports_before_and_after(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    store = tmp_path / "traces.db"
    taught = [(text, "blue") for text in GARDEN] + [(text, "red") for text in KNITTING]
    seed(
        store,
        [row(i, t, route=r, router_backend="ollama") for i, (t, r) in enumerate(taught)],
    )
    config = tmp_path / "plano.yaml"
    config.write_text(TEAMS_CONFIG)
    labeled = tmp_path / "labeled.jsonl"
    labeled.write_text(
        "\n".join(
            json.dumps({"text": t, "route": r})
            for t, r in [
                ("can I prune an apple tree in summer", "blue"),
                ("why are there aphids all over my peppers", "blue"),
                ("how do I read a knitting chart", "red"),
                ("who won the world cup in 2010", "other"),
            ]
        )
    )
    result = CliRunner().invoke(
        app,
        [
            "route",
            "--learn",
            "-f",
            str(config),
            "--store",
            str(store),
            "--eval",
            str(labeled),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    written = tmp_path / "learned_routes.json"  # beside the config by default
    assert report["file"] == str(written)
    assert read_learned(written).routes["blue"].examples
    assert set(report["before"]) == {"domain_accuracy", "out_of_scope_recall", "overall_accuracy"}
    assert report["after"]["domain_accuracy"] > report["before"]["domain_accuracy"]
    shown = CliRunner().invoke(
        app, ["route", "--learn", "-f", str(config), "--store", str(store), "--eval", str(labeled)]
    )
    assert "labeled by the router LLM" in shown.stdout
    assert "domain accuracy" in shown.stdout


def test_cli_says_when_there_is_no_store(tmp_path):
    config = tmp_path / "plano.yaml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(
        app, ["route", "--learn", "-f", str(config), "--store", str(tmp_path / "none.db")]
    )
    assert result.exit_code == 1
    assert "no trace store" in result.output


def test_a_store_from_a_newer_plano_is_refused_not_misread(tmp_path):
    import sqlite3

    store = tmp_path / "traces.db"
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '99')")
        conn.execute("CREATE TABLE requests (request_messages TEXT, started_at REAL)")
    config = tmp_path / "plano.yaml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(app, ["route", "--learn", "-f", str(config), "--store", str(store)])
    assert result.exit_code == 1
    assert "newer Plano" in result.output


def test_learn_options_need_learn(tmp_path):
    config = tmp_path / "plano.yaml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(app, ["route", "hi", "-f", str(config), "--since", "7d"])
    assert result.exit_code == 2
    assert "go with --learn" in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--learn", "--backend", "ollama"], "--backend"),
        (["--learn", "--explain"], "--explain"),
        (["--learn", "--listener", "agents"], "--listener"),
        (["--lint", "--threshold", "0.5"], "--threshold"),
        (["--lint", "--backend", "hybrid"], "--backend"),
        (["hi", "--limit", "5000"], "--limit"),
    ],
)
def test_an_option_a_mode_would_not_use_is_refused(tmp_path, args, flag):
    config = tmp_path / "plano.yaml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(app, ["route", *args, "-f", str(config)])
    assert result.exit_code == 2
    assert flag in result.output


def routing_for(text: str):
    result = check_text(text)
    assert result.ok, [p.message for p in result.problems]
    return asyncio.run(_notes_and_routes(result.config))


async def _notes_and_routes(config):
    service = await build_routing(config, probe_ollama=False)
    try:
        return service.notes, service.routes
    finally:
        await service.close()


def test_plano_up_loads_the_learned_file_when_the_config_names_it(tmp_path):
    path = tmp_path / "learned.json"
    write_learned(
        path,
        LearnedRoutes(
            {"cars": LearnedRoute(tuple(CARS[:4]), 0, 4), "boats": LearnedRoute(("sail",), 0, 1)}
        ),
    )
    notes, routes = routing_for(
        CONFIG + f"routing: {{router: {{backend: embedded, learned_routes: '{path}'}}}}\n"
    )
    assert {r.name: len(r.learned) for r in routes} == {"kitchen": 0, "cars": 4}
    said = [n for n in notes if n.startswith("learned routes:")]
    assert len(said) == 1
    assert "4 prompts from traffic for 1 of 2 routes" in said[0]
    assert "left out: boats" in said[0]


def test_without_the_key_nothing_learned_is_loaded(tmp_path):
    write_learned(tmp_path / "learned_routes.json", LearnedRoutes({"cars": LearnedRoute(("x y",))}))
    notes, routes = routing_for(CONFIG + "routing: {router: {backend: embedded}}\n")
    assert all(not r.learned for r in routes)
    assert not [n for n in notes if "learned" in n]


def test_a_missing_learned_file_is_said_and_routing_goes_on(tmp_path):
    notes, routes = routing_for(
        CONFIG
        + f"routing: {{router: {{backend: embedded, learned_routes: '{tmp_path}/no.json'}}}}\n"
    )
    assert any("learned routes not loaded" in n and "plano route --learn" in n for n in notes)
    assert [r.name for r in routes] == ["kitchen", "cars"]
