"""OpenAI's (or a compatible server's) embeddings (`QA_EMBED_MODEL=openai`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.embed.tokens import Tokens
from qa.errors import ConfigError

if TYPE_CHECKING:
    from qa.settings import Settings


class OpenAIEmbedder:
    """OpenAI (or a compatible server's) embeddings through llama-index."""

    def __init__(self, settings: Settings, model_dir: Path) -> None:
        try:
            from llama_index.embeddings.openai import OpenAIEmbedding
        except ImportError as exc:
            raise ConfigError("OpenAI embeddings need the llm extra: pip install 'qa[llm]'.") from exc
        # As for the LLM: QA_LLM_API_KEY goes to QA_LLM_BASE_URL, OPENAI_API_KEY only ever to OpenAI.
        key = settings.llm_api_key if settings.llm_base_url else (settings.openai_api_key or settings.llm_api_key)
        if key is None and not settings.llm_base_url:
            raise ConfigError("QA_EMBED_MODEL=openai needs OPENAI_API_KEY (or QA_LLM_BASE_URL).")
        self.name = settings.openai_embed_model
        self.tokens = Tokens(model_dir)
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
