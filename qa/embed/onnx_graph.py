"""all-MiniLM-L6-v2 as an ONNX Runtime graph, built from the bundled weights and cached in QA_DATA_DIR.

A graph is used only after its vectors match the NumPy forward pass (cosine >= 0.9999) on `PROBES`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.embed.kernels import HIDDEN, mean_pool, padded, qkv_weights
from qa.embed.weights import MODEL_SHA256

if TYPE_CHECKING:
    from pathlib import Path

    from qa.embed.minilm import MiniLM

log = logging.getLogger(__name__)
_ONNX_VERSION = 1  # bump when onnx_graph changes, so cached graphs are rebuilt


class OnnxUnavailable(Exception):
    pass


# Sentences of mixed lengths in one padded batch: a wrong graph or a bad mask shows up here.
PROBES = [
    "What is Mark Sedwill's job?",
    "x",
    "naïve café – 東京 🚀",
    "Russia announced on Thursday that it will expel 60 US diplomats and an unknown number of envoys "
    "from other countries, in response to the poisoning of a former spy in Salisbury.",
    "Return a new view of the dictionary's keys; see the :ref:`documentation of view objects <dict-views>`.",
    "word " * 40,
]


class OnnxEncoder:
    """The same network as an ONNX Runtime graph: fused attention, GELU and layer norm kernels."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return mean_pool(hidden, mask)

    @classmethod
    def load(cls, model: MiniLM) -> OnnxEncoder:
        """The cached graph if it still matches the NumPy path, else a freshly built one."""
        try:
            import onnxruntime
        except ImportError as exc:
            raise OnnxUnavailable("onnxruntime is not installed (`pip install onnxruntime`).") from exc
        path = model.cache_dir / f"minilm-{MODEL_SHA256[:12]}-v{_ONNX_VERSION}.onnx" if model.cache_dir else None
        if path is not None and path.is_file():
            try:
                encoder = cls(session(onnxruntime, str(path)))
                if encoder._matches(model):
                    return encoder
            except Exception:  # a truncated or foreign file: rebuild it
                log.debug("rebuilding unusable ONNX cache %s", path)
        graph = onnx_graph(model.model_dir, heads=model.heads)
        encoder = cls(session(onnxruntime, graph))
        if not encoder._matches(model):
            raise OnnxUnavailable("the ONNX graph's vectors differ from the NumPy encoder's (cosine < 0.9999).")
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(graph)
                tmp.replace(path)
            except OSError:
                log.debug("could not cache the ONNX graph at %s", path)
        return encoder

    def _matches(self, model: MiniLM) -> bool:
        ids, mask = padded(model.tokens.ids(PROBES))
        cosines = (self.encode(ids, mask) * model._encode(ids, mask)).sum(axis=1)
        return bool(cosines.min() >= 0.9999)


def session(onnxruntime: Any, model: str | bytes) -> Any:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle workers sleep instead of spinning: the machine is shared (tests, other users) and
    # spinning measured no faster here.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def onnx_graph(model_dir: Path, *, heads: int) -> bytes:
    """all-MiniLM-L6-v2 as an ONNX graph over the bundled safetensors, with ONNX Runtime's fused
    BERT operators (Attention, SkipLayerNormalization, BiasGelu); outputs the last hidden state."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise OnnxUnavailable("building the ONNX graph needs the `onnx` package (`pip install onnx`).") from exc
    from safetensors.numpy import load_file

    w = load_file(str(model_dir / "model.safetensors"))
    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(kind: str, inputs: list[str], output: str, **attributes: Any) -> str:
        domain = "com.microsoft" if kind in ("Attention", "SkipLayerNormalization", "BiasGelu") else ""
        nodes.append(helper.make_node(kind, inputs, [output], domain=domain, **attributes))
        return output

    position = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    const("zero", np.array([0], np.int64))
    const("one", np.array([1], np.int64))
    op("Shape", ["input_ids"], "shape")
    op("Gather", ["shape", "one"], "length", axis=0)
    op("Slice", [const("position", position), "zero", "length", "zero"], "positions")
    op("Gather", [const("word", w["embeddings.word_embeddings.weight"]), "input_ids"], "words", axis=0)
    op("Add", ["words", "positions"], "embedded")
    x = op("LayerNormalization", ["embedded", const("emb_g", w["embeddings.LayerNorm.weight"]),
                                  const("emb_b", w["embeddings.LayerNorm.bias"])], "x", axis=-1, epsilon=1e-12)
    op("Cast", ["attention_mask"], "mask", to=TensorProto.INT32)
    for i in range(6):
        p = f"encoder.layer.{i}."
        qkv_w, qkv_b = qkv_weights(w, p)
        context = op("Attention", [x, const(f"qkv_w{i}", qkv_w), const(f"qkv_b{i}", qkv_b), "mask"], f"context{i}",
                     num_heads=heads)
        projected = op("MatMul", [context, const(f"out_w{i}", w[p + "attention.output.dense.weight"].T)], f"projected{i}")
        x = op("SkipLayerNormalization", [projected, x, const(f"ln1_g{i}", w[p + "attention.output.LayerNorm.weight"]),
                                          const(f"ln1_b{i}", w[p + "attention.output.LayerNorm.bias"]),
                                          const(f"out_b{i}", w[p + "attention.output.dense.bias"])], f"x{i}a", epsilon=1e-12)
        hidden = op("MatMul", [x, const(f"ff1_w{i}", w[p + "intermediate.dense.weight"].T)], f"hidden{i}")
        hidden = op("BiasGelu", [hidden, const(f"ff1_b{i}", w[p + "intermediate.dense.bias"])], f"gelu{i}")
        out = op("MatMul", [hidden, const(f"ff2_w{i}", w[p + "output.dense.weight"].T)], f"out{i}")
        x = op("SkipLayerNormalization", [out, x, const(f"ln2_g{i}", w[p + "output.LayerNorm.weight"]),
                                          const(f"ln2_b{i}", w[p + "output.LayerNorm.bias"]),
                                          const(f"ff2_b{i}", w[p + "output.dense.bias"])], f"x{i}b", epsilon=1e-12)
    op("Identity", [x], "hidden")
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]) for name in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", HIDDEN])],
        initializers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx_model.ir_version = 8
    return bytes(onnx_model.SerializeToString())
