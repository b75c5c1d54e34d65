"""all-MiniLM-L6-v2 through llama-index's HuggingFaceEmbedding (`QA_EMBED_MODEL=minilm-torch`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa.embed.tokens import MAX_SEQ_TOKENS, Tokens


class TorchMiniLM:
    """The same weights through llama-index's HuggingFaceEmbedding (sentence-transformers, torch)."""

    name = "all-MiniLM-L6-v2 (torch)"

    def __init__(self, model_dir: Path) -> None:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        self.tokens = Tokens(model_dir)
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
