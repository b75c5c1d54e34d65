"""A small trained reader: does this sentence answer this question? (issue 18)

A cross-encoder built on the bundled all-MiniLM-L6-v2: the question and one candidate sentence go
through the network together (`[CLS] question [SEP] sentence [SEP]`, at most 128 word pieces), so
attention can compare them word by word, which the answerability features (`features.py`) only
approximate. Layers 0-3 are the bundled weights unchanged; layers 4-5 and a linear head over the
mean of the token vectors were trained on `squad2-train-19` (`make train-reader`,
`qa/answer/reader_train.py`). (The retry of session 6 trained all six layers, 96 word pieces; the
artifact's metadata says which layers and how many word pieces, and this module follows it.) The artifact `reader.safetensors` holds only what training changed
(layers 4-5 and the head, float16) plus, in its metadata, the stacked logistic regression that
combines the reader's logit with the answerability model's and the abstention threshold; its
sha256 is checked at load like the bundled model's.

It runs in NumPy (no torch at run time). Tried and measured, not shipped: on held-out fitting articles it
did not beat the answerability model (eval/README.md, bench/results/reader.json), so the answerer does
not use it and `reader.safetensors` is not in git; `make train-reader` rebuilds it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.errors import ConfigError

ARTIFACT = Path(__file__).with_name("reader.safetensors")
ARTIFACT_SHA256 = "7adc9dcd2b4acd0515bf5674fc98816c09a6fe43af28674b33b46bc93ac1244b"  # the retry (bench/results/reader-retry.json); not shipped
HIDDEN = 384
HEADS = 12
LAYERS = 6
TRAINED_FROM = 4  # layers below are the bundled weights; from here on the artifact's
MAX_TOKENS = 128
MAX_QUESTION_TOKENS = 40


def layer_names(i: int) -> dict[str, str]:
    """Our short names of BERT layer `i`'s tensors -> their names in the bundled safetensors."""
    p = f"encoder.layer.{i}."
    return {
        "q.weight": p + "attention.self.query.weight",
        "q.bias": p + "attention.self.query.bias",
        "k.weight": p + "attention.self.key.weight",
        "k.bias": p + "attention.self.key.bias",
        "v.weight": p + "attention.self.value.weight",
        "v.bias": p + "attention.self.value.bias",
        "out.weight": p + "attention.output.dense.weight",
        "out.bias": p + "attention.output.dense.bias",
        "ln1.weight": p + "attention.output.LayerNorm.weight",
        "ln1.bias": p + "attention.output.LayerNorm.bias",
        "ff1.weight": p + "intermediate.dense.weight",
        "ff1.bias": p + "intermediate.dense.bias",
        "ff2.weight": p + "output.dense.weight",
        "ff2.bias": p + "output.dense.bias",
        "ln2.weight": p + "output.LayerNorm.weight",
        "ln2.bias": p + "output.LayerNorm.bias",
    }


class PairTokens:
    """`[CLS] question [SEP] sentence [SEP]` ids and segment ids, truncated to MAX_TOKENS (the question to MAX_QUESTION_TOKENS)."""

    def __init__(self, model_dir: Path, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        cls, sep = self.tokenizer.token_to_id("[CLS]"), self.tokenizer.token_to_id("[SEP]")
        if cls is None or sep is None:
            raise ConfigError(f"The tokenizer in {model_dir} has no [CLS] or [SEP] token; restore the bundled model from git.")
        self.cls: int = cls
        self.sep: int = sep

    def pairs(self, question: str, sentences: list[str]) -> list[tuple[list[int], list[int]]]:
        q = self.tokenizer.encode(question, add_special_tokens=False).ids[:MAX_QUESTION_TOKENS]
        out = []
        for enc in self.tokenizer.encode_batch(sentences, add_special_tokens=False):
            s = enc.ids[: self.max_tokens - 3 - len(q)]
            ids = [self.cls, *q, self.sep, *s, self.sep]
            out.append((ids, [0] * (len(q) + 2) + [1] * (len(s) + 1)))
        return out


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    out: np.ndarray = x / np.sqrt((x * x).mean(-1, keepdims=True) + np.float32(eps)) * weight + bias
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf  # type: ignore[import-untyped]

    out: np.ndarray = x * np.float32(0.5) * (np.float32(1.0) + erf(x * np.float32(1 / math.sqrt(2))).astype(np.float32))
    return out


@dataclass(frozen=True)
class Stack:
    """The combined score of a candidate: sigmoid(a · answerability logit + b · reader logit + c)."""

    coef: tuple[float, ...]
    intercept: float
    threshold: float
    top: int  # the reader reads this many best candidates of the answerability model

    def predict(self, first: np.ndarray, reader: np.ndarray) -> np.ndarray:
        z = np.stack([first, reader], axis=1) @ np.asarray(self.coef) + self.intercept
        out: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))
        return out


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    out: np.ndarray = np.log(p / (1 - p))
    return out


class Reader:
    """The trained cross-encoder in NumPy: `logits(question, sentences)`."""

    def __init__(self, tensors: dict[str, np.ndarray], model_dir: Path, stack: Stack, meta: dict[str, Any]) -> None:
        self.stack = stack
        self.meta = meta
        self.tokens = PairTokens(model_dir, int(meta.get("max_tokens", MAX_TOKENS)))
        self.word = tensors["embeddings.word_embeddings.weight"]
        self.position = tensors["embeddings.position_embeddings.weight"]
        self.segment = tensors["embeddings.token_type_embeddings.weight"]
        self.emb_ln = (tensors["embeddings.LayerNorm.weight"], tensors["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(LAYERS):
            t = {short: tensors[long] for short, long in layer_names(i).items()}
            self.layers.append(
                {
                    "qkv": (np.concatenate([t["q.weight"], t["k.weight"], t["v.weight"]]).T.copy(), np.concatenate([t["q.bias"], t["k.bias"], t["v.bias"]])),
                    "out": (t["out.weight"].T.copy(), t["out.bias"]),
                    "ln1": (t["ln1.weight"], t["ln1.bias"]),
                    "ff1": (t["ff1.weight"].T.copy(), t["ff1.bias"]),
                    "ff2": (t["ff2.weight"].T.copy(), t["ff2.bias"]),
                    "ln2": (t["ln2.weight"], t["ln2.bias"]),
                }
            )
        self.head = (tensors["head.weight"].reshape(-1), float(tensors["head.bias"].reshape(-1)[0]))

    def logits(self, question: str, sentences: list[str]) -> np.ndarray:
        """The reader's logit that each sentence answers the question."""
        if not sentences:
            return np.zeros(0)
        with _one_blas_thread():
            return self._logits(question, sentences)

    def _logits(self, question: str, sentences: list[str]) -> np.ndarray:
        pairs = self.tokens.pairs(question, sentences)
        n = max(len(ids) for ids, _ in pairs)
        b = len(pairs)
        ids = np.zeros((b, n), dtype=np.int64)
        seg = np.zeros((b, n), dtype=np.int64)
        mask = np.zeros((b, n), dtype=np.float32)
        for row, (i, s) in enumerate(pairs):
            ids[row, : len(i)] = i
            seg[row, : len(s)] = s
            mask[row, : len(i)] = 1
        x = self.word[ids] + self.position[:n] + self.segment[seg]
        x = _layer_norm(x.reshape(b * n, HIDDEN), *self.emb_ln)
        bias = ((1 - mask) * np.float32(-1e9))[:, None, None, :]
        h, d = HEADS, HIDDEN // HEADS
        scale = np.float32(1 / math.sqrt(d))
        for layer in self.layers:
            qkv = (x @ layer["qkv"][0] + layer["qkv"][1]).reshape(b, n, 3, h, d)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3) * scale
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = q @ k + bias
            scores -= scores.max(-1, keepdims=True)
            scores = np.exp(scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, HIDDEN)
            x = _layer_norm(context @ layer["out"][0] + layer["out"][1] + x, *layer["ln1"])
            hidden = _gelu(x @ layer["ff1"][0] + layer["ff1"][1])
            x = _layer_norm(hidden @ layer["ff2"][0] + layer["ff2"][1] + x, *layer["ln2"])
        x = x.reshape(b, n, HIDDEN)
        pooled = np.einsum("bnd,bn->bd", x, mask) / mask.sum(1, keepdims=True)
        out: np.ndarray = (pooled @ self.head[0] + self.head[1]).astype(np.float64)
        return out


_blas: Any = None


def _one_blas_thread() -> Any:
    """One BLAS thread: on a busy machine OpenBLAS's spinning second thread made these small products many times slower."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas = ThreadpoolController()
        except ImportError:
            _blas = False
    return _blas.limit(limits=1, user_api="blas") if _blas else contextlib.nullcontext()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundled_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(str(model_dir / "model.safetensors")).items()}


def read_artifact(raw: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The artifact's tensors (as float32) and metadata."""
    from safetensors.numpy import load

    header_len = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + header_len]).get("__metadata__", {})
    return {k: v.astype(np.float32) for k, v in load(raw).items()}, meta


@functools.lru_cache(maxsize=2)
def load_reader(path: Path = ARTIFACT, expected: str | None = None) -> Reader:
    """The bundled MiniLM with the artifact's trained layers; a missing or altered artifact is a ConfigError saying how to rebuild it."""
    from qa.embed import bundled_model_dir

    expected = ARTIFACT_SHA256 if expected is None else expected
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"The reader model {path} is missing ({exc.strerror}). Run `make train-reader` to build it.") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise ConfigError(
            f"The reader model {path} has sha256 {digest[:12]}…, expected {expected[:12]}…; "
            "it was changed or rebuilt differently. Restore it from git or run `make train-reader`."
        )
    trained, meta = read_artifact(raw)
    model_dir = bundled_model_dir()
    tensors = bundled_tensors(model_dir)
    for i in range(int(json.loads(meta.get("meta", "{}")).get("trained_from", TRAINED_FROM)), LAYERS):
        for short, long in layer_names(i).items():
            tensors[long] = trained[f"layer.{i}.{short}"]
    tensors["head.weight"] = trained["head.weight"]
    tensors["head.bias"] = trained["head.bias"]
    stack = json.loads(meta["stack"])
    return Reader(
        tensors,
        model_dir,
        Stack(tuple(stack["coef"]), float(stack["intercept"]), float(stack["threshold"]), int(stack["top"])),
        json.loads(meta.get("meta", "{}")),
    )

