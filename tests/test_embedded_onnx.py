"""The embedded router's int8 ONNX encoder: graph, accuracy against numpy, cache, fallbacks."""

from __future__ import annotations

import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from proxy.routing.embedded import onnx_cache, onnx_graph
from proxy.routing.embedded.encoder import (
    RUNTIME_ENV,
    Encoder,
    ModelSource,
    NumpyEncoder,
    OnnxEncoder,
)
from proxy.routing.embedded.weights import find_model

# Not the build's calibration prompts: accuracy is checked on text it has not seen.
SENTENCES = [
    "hey",
    "ok",
    "?",
    "what time does the pharmacy on main street close tonight",
    "transfer $200 from checking to savings",
    "how many calories are in a banana",
    "rewrite this paragraph so it sounds more formal",
    "fix the null pointer exception in my java code",
    "why is the sky blue",
    "remind me to call mom at 5",
    "what's the capital of australia",
    "generate a regex that matches email addresses",
    "I feel anxious before exams, any tips?",
    "recommend a podcast about history",
    "is it safe to take aspirin with coffee",
    "convert 30 celsius to fahrenheit",
    "my laptop battery drains really fast since the update",
    "write a haiku about autumn leaves",
    "what does HTTP 503 mean",
    "plan a three day itinerary for rome on a budget",
    "order a large pepperoni pizza",
    "how do I center a div in css",
    "je voudrais réserver une table pour deux",
    "what's the difference between a roth ira and a traditional ira",
    "turn off the living room lights",
    "kubectl get pods returns CrashLoopBackOff, what now?",
    "who painted the mona lisa",
    "explain the rules of cricket briefly",
    "do you think AI will replace programmers",
    "the quick brown fox jumps over the lazy dog " * 8,
    "🙂🙂🙂",
]


@pytest.fixture(scope="module")
def reference() -> NumpyEncoder:
    return NumpyEncoder.load()


@pytest.fixture(scope="module")
def onnx_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plano_home")


@pytest.fixture(scope="module")
def encoder(onnx_home) -> OnnxEncoder:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PLANO_HOME", str(onnx_home))
        patch.delenv(RUNTIME_ENV, raising=False)
        loaded = Encoder.load()
    assert isinstance(loaded, OnnxEncoder)
    return loaded


def cached_files(home: Path) -> list[Path]:
    return sorted((home / "models" / "all-MiniLM-L6-v2" / "onnx").glob("encoder-*.onnx"))


def test_fp32_graph_equals_the_numpy_encoder(reference):
    import onnxruntime as ort

    source = ModelSource.read(find_model())
    model = onnx_graph.build_model(source.tensors(), source.config)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    texts = SENTENCES[:8]
    expected = reference.encode(texts)
    for text, row in zip(texts, expected, strict=True):
        ids = np.asarray([reference.tokenizer.encode(text).ids], dtype=np.int64)
        got = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        assert np.abs(got - row).max() < 1e-5


def test_int8_embeddings_are_close_to_fp32(encoder, reference):
    got = encoder.encode(SENTENCES)
    expected = reference.encode(SENTENCES)
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() > 0.99, dict(zip(SENTENCES, cosines.round(4).tolist(), strict=True))


def test_shapes_norms_and_batch_equals_single(encoder):
    texts = [*SENTENCES[:6], "", "a much longer sentence " * 40]
    batch = encoder.encode(texts, batch_size=4)
    assert batch.shape == (len(texts), 384)
    assert batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # Activations are quantized per token, so batch-mates and padding change nothing.
    single = np.stack([encoder.encode([t])[0] for t in texts])
    assert np.abs(batch - single).max() < 1e-5
    assert encoder.encode([]).shape == (0, 384)
    assert encoder.encode(["word " * 2000]).shape == (1, 384)


def test_cache_is_written_once_and_reused(encoder, onnx_home, monkeypatch):
    assert encoder.origin.built
    [path] = cached_files(onnx_home)
    assert encoder.origin.model == path
    before = path.stat().st_mtime_ns
    monkeypatch.setenv("PLANO_HOME", str(onnx_home))
    again = Encoder.load()
    assert isinstance(again, OnnxEncoder)
    assert not again.origin.built
    assert cached_files(onnx_home) == [path]
    assert path.stat().st_mtime_ns == before
    np.testing.assert_array_equal(again.encode(SENTENCES[:3]), encoder.encode(SENTENCES[:3]))


def test_a_new_key_rebuilds_and_drops_the_old_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    first = OnnxEncoder.load()
    [old] = cached_files(tmp_path)
    monkeypatch.setattr(onnx_cache, "BUILDER_VERSION", onnx_cache.BUILDER_VERSION + "-next")
    second = OnnxEncoder.load()
    assert second.origin.built
    [new] = cached_files(tmp_path)
    assert new != old
    assert second.origin.model == new
    assert first.origin.model == old


def test_an_unreadable_cache_file_is_rebuilt(tmp_path, monkeypatch, encoder):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    path = tmp_path / "models" / "all-MiniLM-L6-v2" / "onnx"
    path.mkdir(parents=True)
    target = path / encoder.origin.model.name
    target.write_bytes(b"not an onnx model")
    loaded = OnnxEncoder.load()
    assert loaded.origin.built
    assert target.stat().st_size > 1_000_000


def test_an_unwritable_cache_dir_builds_in_memory(tmp_path, monkeypatch, encoder, caplog):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("a file where PLANO_HOME should be a directory")
    monkeypatch.setenv("PLANO_HOME", str(blocker))
    with caplog.at_level(logging.WARNING, logger="plano.routing"):
        loaded = Encoder.load()
    assert isinstance(loaded, OnnxEncoder)
    assert isinstance(loaded.origin.model, bytes)
    assert "in memory" in caplog.text
    np.testing.assert_array_equal(loaded.encode(SENTENCES[:3]), encoder.encode(SENTENCES[:3]))


def test_concurrent_first_loads_share_one_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    with ThreadPoolExecutor(2) as pool:
        loaded = list(pool.map(lambda _: OnnxEncoder.load(), range(2)))
    assert len(cached_files(tmp_path)) == 1
    assert not list(cached_files(tmp_path)[0].parent.glob(".building-*"))
    a, b = (e.encode(SENTENCES[:4]) for e in loaded)
    np.testing.assert_array_equal(a, b)


def test_env_forces_numpy(monkeypatch, tmp_path):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    monkeypatch.setenv(RUNTIME_ENV, "numpy")
    assert isinstance(Encoder.load(), NumpyEncoder)
    assert not cached_files(tmp_path)


def test_a_failed_build_falls_back_to_numpy(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    monkeypatch.delenv(RUNTIME_ENV, raising=False)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated build failure")

    monkeypatch.setattr(onnx_graph, "build_int8", broken)
    with caplog.at_level(logging.WARNING, logger="plano.routing"):
        loaded = Encoder.load()
    assert isinstance(loaded, NumpyEncoder)
    assert "simulated build failure" in caplog.text
    assert not cached_files(tmp_path)


def test_missing_onnxruntime_falls_back_to_numpy(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PLANO_HOME", str(tmp_path))
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with caplog.at_level(logging.WARNING, logger="plano.routing"):
        loaded = Encoder.load()
    assert isinstance(loaded, NumpyEncoder)
    assert "onnxruntime is not installed" in caplog.text


def test_a_model_whose_weights_point_outside_its_file_is_refused_unread(tmp_path):
    """An ONNX file from a directory the user names: its external-data paths are never
    followed (this one points at a file outside the model directory)."""
    import onnx
    from onnx import TensorProto, helper

    from proxy.routing.embedded.onnx_weights import ExportUnreadable, read_tensors

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 16)
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../secret.bin")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weight],
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    path = model_dir / "model.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    assert onnx.load(str(path), load_external_data=False).graph.initializer[0].name == "w"
    with pytest.raises(ExportUnreadable, match="external data"):
        read_tensors(path)
