"""all-MiniLM-L6-v2 without torch, the default encoder (`QA_EMBED_MODEL=minilm`).

It runs the bundled weights: batches (ingest) through an ONNX Runtime graph built from the
safetensors on first use and cached in QA_DATA_DIR (`onnx_graph`), a question through NumPy, which
loads at once. Both give the same vectors as sentence-transformers (tests check cosine >= 0.9999),
NumPy at ~2.2x and ONNX Runtime at ~3.9x its speed on 2 cores (`bench/encoder_levers.py`), without
the seconds that importing torch and sentence-transformers costs every `qa ask`.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from qa.embed.kernels import HIDDEN, gelu_, layer_norm_, mean_pool, one_blas_thread, padded, qkv_weights
from qa.embed.onnx_graph import OnnxEncoder, OnnxUnavailable
from qa.embed.tokens import Tokens
from qa.errors import ConfigError

RUNTIMES = ("auto", "onnx", "numpy")

log = logging.getLogger(__name__)
_TOKENS_PER_BATCH = 8192
# Smaller calls (a question, a short file) stay in NumPy: loading the ONNX session and checking it
# costs ~0.4 s (~1.5 s the first time, when the graph is built), what NumPy needs for ~2,000 word pieces.
_ONNX_MIN_TOKENS = 4096


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
        self._onnx: OnnxEncoder | bool | None = None  # False: unavailable, NumPy it is
        self._lock = threading.RLock()  # the ONNX check runs the NumPy path, which may load weights
        self.tokens = Tokens(model_dir)
        self.layers: list[dict[str, Any]] = []  # loaded on first use: re-ingesting an unchanged folder only counts tokens

    def _load_weights(self) -> None:
        from safetensors.numpy import load_file

        w = load_file(str(self.model_dir / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        scale = np.float32(1.0 / math.sqrt(HIDDEN // self.heads))
        layers = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv_w, qkv_b = qkv_weights(w, p)
            qkv_w[:, :HIDDEN] *= scale  # fold the attention scale into the query projection
            qkv_b[:HIDDEN] *= scale
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
            return np.zeros((0, HIDDEN), dtype=np.float32)
        unique = list(dict.fromkeys(texts))  # docs repeat lines (headings, code); embed each once
        ids = self.tokens.ids(unique)
        onnx = None
        if self.runtime == "onnx" or (self.runtime == "auto" and sum(map(len, ids)) >= _ONNX_MIN_TOKENS):
            onnx = self._onnx_encoder()
        elif self.runtime == "auto" and isinstance(self._onnx, OnnxEncoder):
            onnx = self._onnx  # already loaded (this process ingested): a question takes 6 ms there, 11 in NumPy
        vectors = np.zeros((len(unique), HIDDEN), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        # Batches of similar length waste little on padding; cap tokens per batch to bound memory.
        i = 0
        while i < len(order):
            longest = len(ids[order[min(i + batch_size, len(order)) - 1]])
            size = max(1, min(batch_size, _TOKENS_PER_BATCH // max(longest, 1)))
            batch = order[i : i + size]
            batch_ids = padded([ids[j] for j in batch])
            vectors[batch] = onnx.encode(*batch_ids) if onnx else self._encode(*batch_ids)
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
        with one_blas_thread():
            return self._forward(ids, mask)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # 2-D matrix products: NumPy runs a 3-D `x @ W` as one small GEMM per sentence, 10-20x slower.
        b, n = ids.shape
        h, d = self.heads, HIDDEN // self.heads
        x = self.word[ids]
        x += self.position[:n]
        x = layer_norm_(x.reshape(b * n, HIDDEN), *self.emb_ln)
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
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, HIDDEN)
            attended = context @ layer["out"][0]
            attended += layer["out"][1]
            attended += x
            x = layer_norm_(attended, *layer["ln1"])
            hidden = x @ layer["ff1"][0]
            hidden += layer["ff1"][1]
            out = gelu_(hidden) @ layer["ff2"][0]
            out += layer["ff2"][1]
            out += x
            x = layer_norm_(out, *layer["ln2"])
        return mean_pool(x.reshape(b, n, HIDDEN), mask)

    def _onnx_encoder(self) -> OnnxEncoder | None:
        with self._lock:
            if self._onnx is None:
                try:
                    self._onnx = OnnxEncoder.load(self)
                except OnnxUnavailable as exc:
                    if self.runtime == "onnx":
                        raise ConfigError(f"The ONNX encoder is unavailable: {exc}") from exc
                    log.warning("Embedding with NumPy, about half as fast: %s", exc)
                    self._onnx = False
            return self._onnx if isinstance(self._onnx, OnnxEncoder) else None
