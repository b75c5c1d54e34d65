"""The NumPy pieces of all-MiniLM-L6-v2 shared by its NumPy forward pass and its ONNX graph."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

HIDDEN = 384


# Eigen's float32 erf (a rational fit on [-4, 4], error ~1 ulp): no float64 temporaries, no exp.
_ERF_NUM = tuple(np.float32(c) for c in (
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
    -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02,
))
_ERF_DEN = tuple(np.float32(c) for c in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
    -1.42647390514189e-02,
))


def gelu_(h: np.ndarray) -> np.ndarray:
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


def layer_norm_(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
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


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the unpadded token vectors, L2-normalised (sentence-transformers' pooling)."""
    mask = mask.astype(np.float32)
    pooled = np.einsum("bnd,bn->bd", hidden, mask) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    out: np.ndarray = pooled.astype(np.float32, copy=False)
    return out


def padded(batch: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    length = max(len(x) for x in batch)
    ids = np.zeros((len(batch), length), dtype=np.int64)
    mask = np.zeros((len(batch), length), dtype=np.int64)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


_blas: Any = None


def one_blas_thread() -> contextlib.AbstractContextManager[object]:
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


def qkv_weights(w: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Query, key and value projections side by side: one [384, 1152] matrix and its bias."""
    names = ("query", "key", "value")
    weight = np.concatenate([w[prefix + f"attention.self.{n}.weight"] for n in names], axis=0).T.copy()
    bias = np.concatenate([w[prefix + f"attention.self.{n}.bias"] for n in names])
    return weight, bias
