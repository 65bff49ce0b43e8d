"""all-MiniLM-L6-v2 as an ONNX graph, written from its safetensors weights (no torch export).

The graph is the whole sentence-transformers pipeline: BERT (token type 0 folded into the word
embeddings, since a single sentence never has another), exact Erf GELU, then mean pooling over
the attention mask and L2 normalisation, so its one output is the final unit-length embedding.
Inputs: input_ids and attention_mask, int64, shape (batch, tokens). Opset 17 plus onnxruntime's
com.microsoft contrib ops, so the graph is for onnxruntime only.

build_int8 writes the fast variant: every weight projection in int8. onnxruntime's
quantize_dynamic was measured and not used: its one activation scale per tensor gave cosines
to fp32 of 0.98-0.99 on short prompts (the [CLS]/[SEP] outliers set the scale) and made each
prompt's embedding depend on its batch-mates. Here activations get one scale per token, and
SmoothQuant factors, calibrated on a few prompts at build time, move the outlier channels'
range into the per-column weight scales: cosine to fp32 >= 0.99, at the same speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization became a standard op in 17
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
OUTPUT = "sentence_embedding"
# onnxruntime's contrib ops (BiasGelu, MatMulIntegerToFloat): fused kernels of its CPU provider.
MS_DOMAIN = "com.microsoft"
# Padded keys' additive logit bias, as in the numpy encoder: exp() of it is exactly 0.
MASK_BIAS = -1e9
# SmoothQuant's migration strength: 0.5 gave the best worst-case cosine of 0.3 / 0.5 / 0.7.
SMOOTHING_ALPHA = 0.5
PROJECTIONS = ("qkv", "attention_out", "up", "down")
# Prompts whose activation peaks set the smoothing factors: short and long, questions and
# commands, code and non-English, since the outlier channels are the same for all of them.
CALIBRATION = (
    "hi",
    "a",
    "",
    "thanks!",
    "hello there",
    "what is my credit card limit",
    "play some jazz",
    "book a flight to paris tomorrow morning",
    "how do I reset my password",
    "translate this to french: good morning, how are you?",
    "write a python function that reverses a linked list",
    "def add(a, b): return a + b  # why does this fail?",
    "SELECT name FROM users WHERE age > 30 ORDER BY name;",
    "my car makes a grinding noise when I brake, what could it be?",
    "summarize the following article about climate policy in europe",
    "what's the weather like in tokyo this weekend",
    "can you recommend a good sci-fi novel for a long train ride",
    "explain quantum entanglement to a ten year old",
    "I want to cancel my subscription and get a refund",
    "Ünïcode and émojis 🙂 in one sentence",
    "¿dónde está la estación de tren más cercana?",
    "wie spät ist es in berlin",
    "solve 3x + 7 = 22 and show the steps",
    "my package never arrived, the tracking number is 1Z999AA10123456784",
    "draft a polite email declining a meeting invitation",
    "what are the side effects of ibuprofen",
    "ERROR: connection refused at localhost:5432 while running migrations",
    "tell me a joke about penguins",
    "compare the pros and cons of renting versus buying a house in a big city, considering "
    "taxes, maintenance costs, flexibility and long-term investment returns",
    "set an alarm for 6:30 am",
    "who won the world cup in 2014",
    "a much longer sentence " * 20,
)


class _Graph:
    """Nodes and initializers, with unique names made from a prefix."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], prefix: str | None = None, **attrs) -> str:
        out = self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def ops(self, op_type: str, inputs: list[str], n: int, prefix: str, **attrs) -> list[str]:
        outs = [self.name(prefix) for _ in range(n)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=outs[0], **attrs))
        return outs


def _scalar(value: float, dtype: type = np.float32) -> np.ndarray:
    return np.array(value, dtype=dtype)


def projection_weight(tensors: dict[str, np.ndarray], layer: int, projection: str) -> np.ndarray:
    """A projection's weight in torch's (out, in) layout, before any scale is folded in."""
    p = f"encoder.layer.{layer}."
    if projection == "qkv":
        att = p + "attention.self."
        parts = [tensors[att + name + ".weight"] for name in ("query", "key", "value")]
        return np.concatenate(parts).astype(np.float32)
    name = {
        "attention_out": "attention.output.dense",
        "up": "intermediate.dense",
        "down": "output.dense",
    }[projection]
    return np.asarray(tensors[p + name + ".weight"], dtype=np.float32)


def build_model(
    tensors: dict[str, np.ndarray],
    config: dict,
    *,
    int8: bool = False,
    smoothing: dict[str, np.ndarray] | None = None,
    taps: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """The encoder graph, fp32 or with int8 projections; KeyError names a missing tensor.

    smoothing maps "<layer>.<projection>" to per-input-channel factors s: the projection's
    input is divided by s and its weight's input columns multiplied by s, the same function in
    exact arithmetic. taps, when given, is filled with each projection's input tensor name,
    for calibration.

    Between the embeddings and the pooling, activations are kept as (batch * tokens, hidden):
    one row per token is what the per-token QuantizeLinear (a scale per row of axis 0) needs;
    only attention splits the heads out. At a dozen tokens onnxruntime's per-node cost rivals
    the arithmetic, so a layer is written in as few nodes as measured fastest.
    """
    smoothing = smoothing or {}
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    g = _Graph()
    shared: dict[str, str] = {}

    def constant(name: str, make: Callable[[], np.ndarray]) -> str:
        # Made on first use: an unused initializer makes onnxruntime log a warning.
        if name not in shared:
            shared[name] = g.const(name, make())
        return shared[name]

    def get(name: str) -> np.ndarray:
        return np.asarray(tensors[name], dtype=np.float32)

    def factors(key: str) -> np.ndarray:
        return np.asarray(smoothing.get(key, np.ones(1)), dtype=np.float32)

    def ints(name: str, values: list[int]) -> str:
        return constant(name, lambda: np.array(values, dtype=np.int64))

    def product(x: str, weight: np.ndarray, key: str, divide: bool) -> str:
        """x @ weight.T, without the bias (its consumer adds it). divide=False: the caller's
        graph already divided x by the smoothing factors, folded into an earlier op."""
        s = factors(key)
        if divide and key in smoothing:
            x = g.op("Mul", [x, g.const(key + "_unsmooth", 1.0 / s)], key + "_smooth")
        if taps is not None:
            taps[key] = x
        w_t = (weight * s).T  # torch's (out, in) -> (in, out)
        return int8_matmul(x, w_t, key) if int8 else g.op("MatMul", [x, g.const(key, w_t)])

    def int8_matmul(x: str, w_t: np.ndarray, key: str) -> str:
        """x @ w_t with int8 weights (a scale per output column) and uint8 activations (a scale
        per token, so a token's result never depends on the other rows of its batch)."""
        w_scale = (np.maximum(np.abs(w_t).max(axis=0), 1e-12) / 127.0).astype(np.float32)
        w_q = np.clip(np.rint(w_t / w_scale), -127, 127).astype(np.int8)
        peak = g.op("ReduceMax", [g.op("Abs", [x])], key + "_peak", axes=[1], keepdims=0)
        scale = g.op("Mul", [peak, constant("inv_i8_max", lambda: _scalar(1.0 / 127.0))])
        scale = g.op("Max", [scale, constant("tiny", lambda: _scalar(1e-12))], key + "_scale")
        # round(x / scale) + 128, saturated to [0, 255]; the row's peak lands on 1 or 255.
        q = g.op("QuantizeLinear", [x, scale, token_zero_point], key + "_q", axis=0)
        acc = g.op(
            "MatMulIntegerToFloat",
            [
                q,
                g.const(key + "_wq", w_q),
                constant("one_f", lambda: _scalar(1.0)),
                g.const(key + "_column_scale", w_scale),
                constant("u8_zero_point", lambda: _scalar(128, np.uint8)),
            ],
            key + "_int8",
            domain=MS_DOMAIN,
        )
        row_scale = g.op("Unsqueeze", [scale, ints("axis_1", [1])])
        return g.op("Mul", [acc, row_scale], key + "_dequant")

    def residual_norm(x: str, bias: np.ndarray, residual: str, prefix: str) -> str:
        """LayerNorm(x + bias + residual). Not SkipLayerNormalization: that one op measured
        slower than these three at a dozen tokens."""
        x = g.op("Add", [x, g.const(prefix + "_bias", bias)])
        x = g.op("Add", [x, residual])
        w = g.const(prefix + "_gamma", get(prefix + ".weight"))
        b = g.const(prefix + "_beta", get(prefix + ".bias"))
        return g.op("LayerNormalization", [x, w, b], prefix, axis=-1, epsilon=eps)

    # Embeddings: word + token type 0 in one table, plus positions 0..tokens-1.
    word = get("embeddings.word_embeddings.weight")
    word = word + get("embeddings.token_type_embeddings.weight")[0]
    word_table = g.const("word_embeddings", word)
    position_table = g.const("position_embeddings", get("embeddings.position_embeddings.weight"))
    shape = g.op("Shape", [INPUT_IDS])  # (batch, tokens)
    tokens = g.op("Slice", [shape, ints("one", [1]), ints("two", [2])])
    positions = g.op("Slice", [position_table, ints("zero", [0]), tokens, ints("zero", [0])])
    x = g.op("Add", [g.op("Gather", [word_table, INPUT_IDS]), positions])
    gamma = g.const("embeddings_gamma", get("embeddings.LayerNorm.weight"))
    beta = g.const("embeddings_beta", get("embeddings.LayerNorm.bias"))
    x = g.op("LayerNormalization", [x, gamma, beta], "embeddings", axis=-1, epsilon=eps)
    rows = ints("rows", [-1, hidden])
    x = g.op("Reshape", [x, rows])
    token_zero_point = ""
    if int8:
        # QuantizeLinear wants a zero point per row when its scale has one: made once here.
        count = g.op("ReduceProd", [shape], keepdims=1)
        fill = numpy_helper.from_array(np.array([128], dtype=np.uint8))
        token_zero_point = g.op("ConstantOfShape", [count], "token_zero_point", value=fill)
    # (batch, 1, 1, tokens): 0 for real tokens, MASK_BIAS for padding.
    mask = g.op("Cast", [ATTENTION_MASK], to=TensorProto.FLOAT)
    inverted = g.op("Sub", [constant("one_f", lambda: _scalar(1.0)), mask])
    mask_bias = g.op("Mul", [inverted, g.const("mask_bias", _scalar(MASK_BIAS))])
    mask_bias = g.op("Unsqueeze", [mask_bias, ints("axes_1_2", [1, 2])])
    split_heads = g.op(
        "Concat", [ints("minus_one", [-1]), tokens, ints("heads", [heads, head_dim])], axis=0
    )
    scale = np.float32(1.0 / np.sqrt(head_dim))

    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        att = p + "attention.self."
        # One (hidden, 3*hidden) projection: one activation quantization and one GEMM, not
        # three. The output projection's smoothing is folded into V: context is linear in V.
        v_scale = 1.0 / factors(f"{i}.attention_out")
        qkv_w = projection_weight(tensors, i, "qkv")
        qkv_w[:hidden] *= scale
        qkv_w[2 * hidden :] *= v_scale[:, None]
        qkv_b = np.concatenate(
            [
                get(att + "query.bias") * scale,
                get(att + "key.bias"),
                get(att + "value.bias") * v_scale,
            ]
        )
        qkv = product(x, qkv_w, f"{i}.qkv", divide=True)
        qkv = g.op("Add", [qkv, g.const(f"{i}.qkv_b", qkv_b)], f"{i}.qkv_bias")
        q, k, v = g.ops("Split", [qkv, ints("qkv_sizes", [hidden] * 3)], 3, f"{i}.split", axis=-1)
        # Not onnxruntime's MultiHeadAttention: measured slower than these ops on CPU.
        q = g.op("Transpose", [g.op("Reshape", [q, split_heads])], perm=[0, 2, 1, 3])
        k_t = g.op("Transpose", [g.op("Reshape", [k, split_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, split_heads])], perm=[0, 2, 1, 3])
        logits = g.op("Add", [g.op("MatMul", [q, k_t], f"{i}.scores"), mask_bias])
        probs = g.op("Softmax", [logits], axis=-1)
        context = g.op("MatMul", [probs, v], f"{i}.context")  # (batch, heads, tokens, dim)
        context = g.op("Transpose", [context], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, rows])
        attended = product(
            context, projection_weight(tensors, i, "attention_out"), f"{i}.attention_out", False
        )
        bias = get(p + "attention.output.dense.bias")
        x = residual_norm(attended, bias, x, p + "attention.output.LayerNorm")
        up = product(x, projection_weight(tensors, i, "up"), f"{i}.up", divide=True)
        # Exact (Erf) GELU, as BERT was trained with, not the tanh approximation.
        up_b = g.const(f"{i}.up_b", get(p + "intermediate.dense.bias"))
        gelu = g.op("BiasGelu", [up, up_b], f"{i}.gelu", domain=MS_DOMAIN)
        if f"{i}.down" in smoothing:
            unsmooth = g.const(f"{i}.down_unsmooth", 1.0 / factors(f"{i}.down"))
            gelu = g.op("Mul", [gelu, unsmooth], f"{i}.down_smooth")
        down = product(gelu, projection_weight(tensors, i, "down"), f"{i}.down", divide=False)
        bias = get(p + "output.dense.bias")
        x = residual_norm(down, bias, x, p + "output.LayerNorm")

    # Mean over real tokens, then unit length (the same floors as sentence-transformers).
    x = g.op("Reshape", [x, g.op("Concat", [shape, ints("hidden", [hidden])], axis=0)])
    weights = g.op("Unsqueeze", [mask, ints("axis_2", [2])])
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights]), ints("one", [1])], keepdims=0)
    count = g.op("ReduceSum", [weights, ints("one", [1])], keepdims=0)
    count = g.op("Max", [count, g.const("min_count", _scalar(1e-9))])
    pooled = g.op("Div", [summed, count])
    squares = g.op("Mul", [pooled, pooled])
    norm = g.op("Sqrt", [g.op("ReduceSum", [squares, ints("one", [1])], keepdims=1)])
    norm = g.op("Max", [norm, g.const("min_norm", _scalar(1e-12))])
    g.nodes.append(helper.make_node("Div", [pooled, norm], [OUTPUT], name=OUTPUT))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info(ATTENTION_MASK, TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="plano",
    )
    model.ir_version = 8  # readable by every onnxruntime >= 1.14, whatever onnx wrote this
    return model


def smoothing_factors(
    tensors: dict[str, np.ndarray],
    config: dict,
    batches: Sequence[np.ndarray],
    alpha: float = SMOOTHING_ALPHA,
) -> dict[str, np.ndarray]:
    """SmoothQuant factors max|x_j|^alpha / max|W_j|^(1-alpha) for every projection, from the
    fp32 graph's activation peaks on the given token-id rows (each (1, tokens))."""
    import onnxruntime as ort  # only the build needs it here; the module imports without it

    taps: dict[str, str] = {}
    model = build_model(tensors, config, taps=taps)
    names = list(dict.fromkeys(taps.values()))
    model.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in names
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    peaks = {name: np.zeros(1, dtype=np.float32) for name in names}
    for ids in batches:
        feed = {INPUT_IDS: ids, ATTENTION_MASK: np.ones_like(ids)}
        for name, value in zip(names, session.run(names, feed), strict=True):
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            peaks[name] = np.maximum(peaks[name], peak)
    factors: dict[str, np.ndarray] = {}
    for key, name in taps.items():
        layer, projection = key.split(".")
        weight = projection_weight(tensors, int(layer), projection)
        w_peak = np.maximum(np.abs(weight).max(axis=0), 1e-5)
        x_peak = np.maximum(peaks[name], 1e-5)
        factors[key] = (x_peak**alpha / w_peak ** (1.0 - alpha)).astype(np.float32)
    return factors


def build_int8(
    tensors: dict[str, np.ndarray], config: dict, tokenize: Callable[[str], list[int]]
) -> onnx.ModelProto:
    """The int8 encoder, smoothed with factors calibrated on CALIBRATION."""
    batches = [np.asarray([tokenize(text)], dtype=np.int64) for text in CALIBRATION]
    factors = smoothing_factors(tensors, config, batches)
    return build_model(tensors, config, int8=True, smoothing=factors)
