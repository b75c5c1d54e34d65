"""What each encoder lever buys: `python bench/encoder_levers.py [--sentences 400] [--rounds 3]`.

Embeds the same sentences (a fixed sample of the Python docs, as `qa ingest` cuts them) with each
variant, rounds interleaved so that the shared machine's noise hits all alike, and prints the
median wall time, word pieces per second, words per second, CPU seconds and the lowest cosine
against sentence-transformers. Variants, cumulative:

    sentence-transformers   torch, through llama-index's HuggingFaceEmbedding (the reference)
    numpy, before           the encoder before issue 8: 3-D matmuls, erf via np.where, default BLAS threads
    + 2-D matmuls           (batch*tokens, 384) @ W: one GEMM per layer instead of one per sentence
    + float32 erf, in place Eigen's rational erf, fused in-place ops
    + 1 BLAS thread         what `qa` runs for a question
    onnxruntime fp32        the same weights as an ONNX graph with fused BERT kernels: what ingest runs
    onnxruntime int8        dynamic quantisation (rejected: see its cosine)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
import qa.embed as E  # noqa: E402
from corpora import PYDOCS, ensure_python_docs  # noqa: E402


def sample(n: int) -> list[str]:
    from qa.documents import chunk_document, load_folder

    ensure_python_docs()
    tokens = E._Tokens(E.bundled_model_dir())
    docs = load_folder(PYDOCS, max_bytes=20_000_000).documents[::10]
    texts = [t for d in docs for c in chunk_document(d, count_tokens=tokens.count, max_tokens=200) for t in c.sentence_texts()]
    random.Random(0).shuffle(texts)
    return texts[:n]


def _erf_before(x: np.ndarray) -> np.ndarray:
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(x.dtype)


def _gelu_before(h: np.ndarray) -> np.ndarray:
    h *= 0.5 * (1.0 + _erf_before(h * np.float32(1 / math.sqrt(2))))
    return h


def _ln_before(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class Before(E.MiniLM):
    """The forward pass as it was: 3-D products, NumPy's default BLAS threads."""

    def _encode(self, ids: np.ndarray, mask_i: np.ndarray) -> np.ndarray:
        if not self.layers:
            self._load_weights()
        mask = mask_i.astype(np.float32)
        b, n = ids.shape
        h, d = self.heads, 384 // self.heads
        x = _ln_before(self.word[ids] + self.position[:n], *self.emb_ln)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer["qkv"][0] + layer["qkv"][1]
            q, k, v = (qkv[..., i * 384 : (i + 1) * 384].reshape(b, n, h, d).transpose(0, 2, 1, 3) for i in range(3))
            scores = q @ k.transpose(0, 1, 3, 2) + bias  # the scale is folded into the query weights
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, 384)
            x = _ln_before(x + context @ layer["out"][0] + layer["out"][1], *layer["ln1"])
            hidden = x @ layer["ff1"][0] + layer["ff1"][1]
            hidden = hidden * 0.5 * (1.0 + _erf_before(hidden * np.float32(1 / math.sqrt(2))))
            x = _ln_before(x + hidden @ layer["ff2"][0] + layer["ff2"][1], *layer["ln2"])
        return E._mean_pool(x, mask_i)


class TwoD(E.MiniLM):
    """2-D products, but the old erf and layer norm, default BLAS threads."""

    def _encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not self.layers:
            self._load_weights()
        with _patched(E, _gelu_=_gelu_before, _layer_norm_=_ln_before):
            return self._forward(ids, mask)


class InPlace(E.MiniLM):
    """The shipped NumPy forward pass with NumPy's default BLAS threads."""

    def _encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not self.layers:
            self._load_weights()
        return self._forward(ids, mask)


@contextlib.contextmanager
def _patched(module: Any, **names: Any) -> Iterator[None]:
    saved = {k: getattr(module, k) for k in names}
    for k, v in names.items():
        setattr(module, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def int8_encoder(cache: Path) -> Callable[[list[str]], np.ndarray]:
    import onnxruntime
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = cache / "fp32.onnx", cache / "int8.onnx"
    source.write_bytes(E._onnx_graph(E.bundled_model_dir(), heads=12))
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
    model = E.MiniLM(E.bundled_model_dir(), runtime="numpy")
    encoder = E._OnnxEncoder(E._session(onnxruntime, str(target)))

    def embed(texts: list[str]) -> np.ndarray:
        with _patched(model, _encode=encoder.encode):
            return model.embed(texts)

    return embed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "encoder_levers.json")
    args = parser.parse_args()
    texts = sample(args.sentences)
    words = sum(len(t.split()) for t in texts)
    model_dir = E.bundled_model_dir()
    cache = Path(tempfile.mkdtemp(prefix="levers-"))
    variants: dict[str, Callable[[list[str]], np.ndarray]] = {
        "sentence-transformers (torch)": E.TorchMiniLM(model_dir).embed,
        "numpy, before": Before(model_dir, runtime="numpy").embed,
        "+ 2-D matmuls": TwoD(model_dir, runtime="numpy").embed,
        "+ float32 erf, in place": InPlace(model_dir, runtime="numpy").embed,
        "+ 1 BLAS thread (questions)": E.MiniLM(model_dir, runtime="numpy").embed,
        "onnxruntime fp32 (ingest)": E.MiniLM(model_dir, cache_dir=cache, runtime="onnx").embed,
        "onnxruntime int8 (rejected)": int8_encoder(cache),
    }
    pieces = sum(len(i) for i in E._Tokens(model_dir).ids(texts))
    for embed in variants.values():
        embed(texts[:20])  # load weights, sessions
    reference = variants["sentence-transformers (torch)"](texts)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    cosine: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, embed in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            vectors = embed(texts)
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            cosine[name] = float((vectors * reference).sum(axis=1).min())
    rows = []
    print(f"{len(texts)} sentences, {words:,} words, {pieces:,} word pieces; median of {args.rounds} interleaved rounds\n")
    print(f"{'variant':<30} {'wall s':>7} {'pieces/s':>9} {'words/s':>8} {'cpu s':>7} {'vs ST':>6} {'min cosine':>11}")
    st_wall = statistics.median(w for w, _ in runs["sentence-transformers (torch)"])
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        rows.append({"variant": name, "wall_s": round(wall, 3), "pieces_per_s": round(pieces / wall), "words_per_s": round(words / wall),
                     "cpu_s": round(cpu, 3), "speedup_vs_st": round(st_wall / wall, 2), "min_cosine_vs_st": round(cosine[name], 7)})
        print(f"{name:<30} {wall:7.2f} {pieces / wall:9,.0f} {words / wall:8,.0f} {cpu:7.2f} {st_wall / wall:5.2f}x {cosine[name]:11.7f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"sentences": len(texts), "words": words, "word_pieces": pieces, "rounds": args.rounds, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
