"""all-MiniLM-L6-v2 without torch: a BERT encoder, mean pooling and L2 normalisation.

This is what sentence-transformers runs for this model (Transformer -> mean Pooling ->
Normalize), without torch: the gateway must route offline with a small install. Two runtimes:

- OnnxEncoder (the default): the model as an int8 ONNX graph on onnxruntime (onnx_graph.py),
  built from the weights on first use and cached (onnx_cache.py). ~3x faster than numpy per
  prompt; embeddings within cosine 0.99 of fp32.
- NumpyEncoder: float32 numpy, equal to sentence-transformers to ~1e-6. The fallback when
  onnxruntime is missing or the build fails, and what PLANO_EMBEDDED_RUNTIME=numpy selects.

Both are safe to call from several threads at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from proxy.routing.embedded import onnx_cache
from proxy.routing.embedded.weights import (
    ModelFiles,
    RouterModelUnavailable,
    corrupt,
    find_model,
    load_tensors,
    read_json,
)

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

log = logging.getLogger("plano.routing")

# sentence-transformers' max_seq_length for this model; tokenizer.json itself says 128.
DEFAULT_MAX_TOKENS = 256
# Sort-by-length batches keep padding (wasted work) small when indexing many phrases.
BATCH_SIZE = 64
RUNTIME_ENV = "PLANO_EMBEDDED_RUNTIME"
RUNTIMES = ("onnx", "numpy")
# onnxruntime threads per call: 1 measured fastest on 2 cores, for one prompt and for batches.
ONNX_THREADS = 2


# Abramowitz & Stegun 7.1.26: erf(z) = 1 - poly(t) exp(-z^2), t = 1 / (1 + P z), for z >= 0,
# absolute error <= 1.5e-7. numpy has no erf and scipy is no dependency.
_P = np.float32(0.3275911)
_A = tuple(
    np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_SQRT_HALF = np.float32(0.7071067811865476)


def erfc_abs(a: np.ndarray) -> np.ndarray:
    """1 - erf(a) for a >= 0 (a fresh array)."""
    t = a * _P
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * _A[4]
    for coeff in (_A[3], _A[2], _A[1], _A[0]):
        poly += coeff
        poly *= t
    e = a * a
    np.negative(e, out=e)
    np.exp(e, out=e)
    poly *= e
    return poly


def erf(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * (np.float32(1.0) - erfc_abs(np.abs(x)))


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), not the tanh approximation.

    Written as relu(x) - |x| erfc(|x|/sqrt 2) / 2, which needs no sign or branch: numpy's where
    and copysign cost more than the whole polynomial on these small arrays.
    """
    a = np.abs(x)
    q = erfc_abs(a * _SQRT_HALF)
    q *= a
    q *= np.float32(0.5)
    out = np.maximum(x, np.float32(0.0))
    out -= q
    return out


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over axis 0: activations are kept as (hidden, tokens), see Encoder._forward.

    The means are taken as a (1, hidden) @ (hidden, tokens) product: a strided numpy reduction
    over axis 0 is slower than the whole rest of the norm on these small arrays.
    """
    averaging = np.full((1, x.shape[0]), 1.0 / x.shape[0], dtype=np.float32)
    centred = x - averaging @ x
    var = averaging @ (centred * centred)
    var += np.float32(eps)
    np.sqrt(var, out=var)
    centred /= var
    centred *= weight
    centred += bias
    return centred


@dataclass(frozen=True, slots=True)
class Layer:
    """One BERT layer's weights in torch's (out, in) layout; biases and norms as columns."""

    qkv_w: np.ndarray  # (3*hidden, hidden); the 1/sqrt(head_dim) scale is folded into Q
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


@dataclass(frozen=True, slots=True)
class ModelSource:
    """A model directory's small files, read; the weights are read only when needed."""

    files: ModelFiles
    tokenizer: Tokenizer
    config: dict
    max_tokens: int

    @classmethod
    def read(cls, files: ModelFiles) -> ModelSource:
        config = read_json(files.config)
        if files.pooling.is_file():
            pooling = read_json(files.pooling)
            if not pooling.get("pooling_mode_mean_tokens", True):
                raise corrupt(files.pooling, "the embedded router implements mean pooling only")
        max_tokens = DEFAULT_MAX_TOKENS
        st_config = files.directory / "sentence_bert_config.json"
        if st_config.is_file():
            max_tokens = int(read_json(st_config).get("max_seq_length", max_tokens))
        try:
            tokenizer = Tokenizer.from_file(str(files.tokenizer))
        except Exception as exc:  # the Rust side raises a bare Exception on bad JSON
            raise corrupt(files.tokenizer, exc) from exc
        max_tokens = min(max_tokens, int(config.get("max_position_embeddings", 512)))
        # tokenizer.json pads to a fixed width; the encoders (and the int8 build's
        # calibration, which runs before any encoder exists) need each text's own tokens.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        return cls(files, tokenizer, config, max_tokens)

    def tensors(self) -> dict[str, np.ndarray]:
        return load_tensors(self.files)


def requested_runtime() -> str:
    value = os.environ.get(RUNTIME_ENV, "").strip().lower() or "onnx"
    if value == "onnxruntime":
        return "onnx"
    if value not in RUNTIMES:
        log.warning("%s=%r is not one of %s; using onnx", RUNTIME_ENV, value, RUNTIMES)
        return "onnx"
    return value


class Encoder:
    """Sentence embeddings, unit length, shape (n, 384).

    Encoder.load picks the runtime (see the module docstring); NumpyEncoder.load and
    OnnxEncoder.load insist on theirs. Subclasses implement _forward.
    """

    def __init__(self, tokenizer: Tokenizer, config: dict, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.hidden = int(config["hidden_size"])
        self.max_tokens = min(max_tokens, int(config.get("max_position_embeddings", 512)))
        # Settings on the shared tokenizer are made once, here, never per call.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_tokens)

    @classmethod
    def load(cls, files: ModelFiles | None = None) -> Encoder:
        source = ModelSource.read(files or find_model())
        if cls is not Encoder:
            return cls.from_source(source)
        if requested_runtime() == "numpy":
            return NumpyEncoder.from_source(source)
        try:
            return OnnxEncoder.from_source(source)
        except RouterModelUnavailable:
            raise  # unreadable model files: numpy could not read them either
        except ImportError as exc:
            log.warning(
                "embedded router: onnxruntime is not installed (%s); using the slower numpy "
                "encoder (pip install onnxruntime onnx)",
                exc,
            )
        except Exception as exc:  # any build or runtime failure: routing must still work
            log.warning(
                "embedded router: the int8 ONNX encoder failed (%s: %s); using the slower "
                "numpy encoder",
                type(exc).__name__,
                exc,
            )
        return NumpyEncoder.from_source(source)

    @classmethod
    def from_source(cls, source: ModelSource) -> Encoder:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        return self.hidden

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Unit-length embeddings, one row per text, in the order given."""
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        if not texts:
            return out
        if len(texts) == 1:
            ids = np.asarray([self.tokenizer.encode(texts[0]).ids], dtype=np.int64)
            out[0] = self._forward(ids, np.ones_like(ids, dtype=bool))[0]
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=bool)
            for row, i in enumerate(chunk):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = True
            out[chunk] = self._forward(ids, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Unit-length embeddings of a (batch, width) block of token ids; mask is bool."""
        raise NotImplementedError


class NumpyEncoder(Encoder):
    """The float32 numpy forward pass."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        tensors: dict[str, np.ndarray],
        config: dict,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        super().__init__(tokenizer, config, max_tokens)
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))

        def get(name: str) -> np.ndarray:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        def column(name: str) -> np.ndarray:
            return get(name)[:, None]

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln_w = column("embeddings.LayerNorm.weight")
        self.emb_ln_b = column("embeddings.LayerNorm.bias")
        scale = np.float32(1.0 / np.sqrt(self.hidden // self.heads))
        self.layers: list[Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            self.layers.append(
                Layer(
                    qkv_w=np.concatenate(
                        [
                            get(att + "query.weight") * scale,
                            get(att + "key.weight"),
                            get(att + "value.weight"),
                        ]
                    ),
                    qkv_b=np.concatenate(
                        [
                            get(att + "query.bias") * scale,
                            get(att + "key.bias"),
                            get(att + "value.bias"),
                        ]
                    )[:, None],
                    out_w=get(p + "attention.output.dense.weight"),
                    out_b=column(p + "attention.output.dense.bias"),
                    ln1_w=column(p + "attention.output.LayerNorm.weight"),
                    ln1_b=column(p + "attention.output.LayerNorm.bias"),
                    up_w=get(p + "intermediate.dense.weight"),
                    up_b=column(p + "intermediate.dense.bias"),
                    down_w=get(p + "output.dense.weight"),
                    down_b=column(p + "output.dense.bias"),
                    ln2_w=column(p + "output.LayerNorm.weight"),
                    ln2_b=column(p + "output.LayerNorm.bias"),
                )
            )

    @classmethod
    def from_source(cls, source: ModelSource) -> NumpyEncoder:
        try:
            return cls(source.tokenizer, source.tensors(), source.config, source.max_tokens)
        except KeyError as exc:
            raise corrupt(source.files.weights, f"tensor {exc} is missing") from exc

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Embeddings of a (batch, width) block of token ids.

        Activations are kept transposed, (hidden, batch*width), so each projection is
        W @ x with W in torch's (out, in) layout: for the few tokens of one prompt OpenBLAS
        splits that shape across threads, and the x @ W.T shape it runs on one.
        """
        batch, width = ids.shape
        heads, head_dim, hidden = self.heads, self.hidden // self.heads, self.hidden
        x = self.word[ids] + self.position[:width] + self.token_type  # (batch, width, hidden)
        x = np.ascontiguousarray(x.reshape(batch * width, hidden).T)
        x = layer_norm(x, self.emb_ln_w, self.emb_ln_b, self.eps)
        # Padded keys get -inf-like logits; a batch without padding skips the add.
        bias = None
        if not mask.all():
            bias = np.where(mask, np.float32(0.0), np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            qkv = layer.qkv_w @ x
            qkv += layer.qkv_b
            qkv = qkv.reshape(3, heads, head_dim, batch, width)
            q = qkv[0].transpose(2, 0, 3, 1)  # (batch, heads, width, head_dim)
            k_t = qkv[1].transpose(2, 0, 1, 3)  # (batch, heads, head_dim, width)
            v_t = qkv[2].transpose(2, 0, 1, 3)
            logits = q @ k_t  # (batch, heads, query, key)
            if bias is not None:
                logits += bias
            logits -= logits.max(axis=-1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= logits.sum(axis=-1, keepdims=True)
            context = v_t @ logits.transpose(0, 1, 3, 2)  # (batch, heads, head_dim, query)
            context = context.transpose(1, 2, 0, 3).reshape(hidden, batch * width)
            attended = layer.out_w @ context
            attended += layer.out_b
            attended += x
            x = layer_norm(attended, layer.ln1_w, layer.ln1_b, self.eps)
            up = layer.up_w @ x
            up += layer.up_b
            down = layer.down_w @ gelu(up)
            down += layer.down_b
            down += x
            x = layer_norm(down, layer.ln2_w, layer.ln2_b, self.eps)
        weights = mask.astype(np.float32)
        summed = np.einsum("hbw,bw->bh", x.reshape(hidden, batch, width), weights)
        pooled = summed / np.maximum(weights.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, np.float32(1e-12))


class OnnxEncoder(Encoder):
    """The int8 ONNX graph on onnxruntime; session.run is thread-safe."""

    def __init__(
        self, source: ModelSource, session: InferenceSession, origin: onnx_cache.Built
    ) -> None:
        super().__init__(source.tokenizer, source.config, source.max_tokens)
        self.session = session
        self.origin = origin  # the cache file (or bytes), and whether this load built it
        self._inputs = [i.name for i in session.get_inputs()]

    @classmethod
    def from_source(cls, source: ModelSource) -> OnnxEncoder:
        # Imported here: a missing onnxruntime or onnx must reach Encoder.load's fallback.
        import onnxruntime as ort

        def build() -> bytes:
            from proxy.routing.embedded.onnx_graph import build_int8

            tensors = source.tensors()
            try:
                model = build_int8(tensors, source.config, lambda t: source.tokenizer.encode(t).ids)
            except KeyError as exc:
                raise corrupt(source.files.weights, f"tensor {exc} is missing") from exc
            return model.SerializeToString()

        origin = onnx_cache.cached_model(source.files, build)
        try:
            session = _session(ort, origin.model)
        except Exception:
            if origin.built or not isinstance(origin.model, Path):
                raise
            # A cached file this onnxruntime cannot read (damaged, or from a newer build that
            # shares the key): build it again, once.
            log.warning("embedded router: rebuilding unreadable %s", origin.model)
            origin.model.unlink(missing_ok=True)
            origin = onnx_cache.cached_model(source.files, build)
            session = _session(ort, origin.model)
        log.info(
            "embedded router: int8 ONNX encoder %s in %.2f s (%s)",
            "built" if origin.built else "loaded from cache",
            origin.seconds,
            origin.model if isinstance(origin.model, Path) else "in memory",
        )
        return cls(source, session, origin)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = dict(zip(self._inputs, (ids, mask.astype(np.int64)), strict=True))
        return self.session.run(None, feed)[0]


def _session(ort: ModuleType, model: bytes | Path) -> InferenceSession:
    options = ort.SessionOptions()
    # Two threads: one prompt's encode is ~15% faster than on one (docs/benchmarks.md).
    # Without their brief spin-wait between ops it is slower than one thread.
    options.intra_op_num_threads = ONNX_THREADS
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # its warnings are about graph internals, not for users
    source = str(model) if isinstance(model, Path) else model
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    _one_blas_thread()
    return session


def _one_blas_thread() -> None:
    """numpy's BLAS on one thread, process-wide. The router's products with its prototypes and
    its reject class are small; past about 1,000 background rows OpenBLAS splits them across
    threads that then fight onnxruntime's spinning threads for the same cores: tasks_dev's
    scoring went from 0.3 to 2-3 ms a prompt, p90 5 ms (docs/benchmarks.md)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
