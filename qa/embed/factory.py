"""`make_embedder(settings)`: the embedder `QA_EMBED_MODEL` names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qa.embed.base import Embedder
from qa.embed.weights import bundled_model_dir, verify_weights
from qa.errors import ConfigError
from qa.settings import EMBED_MODELS

if TYPE_CHECKING:
    from qa.settings import Settings

EMBEDDERS = EMBED_MODELS
# Selectable only by its exact name, and never listed to users as a choice: it knows no synonyms.
FAKE = "fake"


def make_embedder(settings: Settings) -> Embedder:
    """The embedder named by `QA_EMBED_MODEL`."""
    model_dir = bundled_model_dir()
    if settings.embed_model == "openai":
        from qa.embed.openai_embedder import OpenAIEmbedder

        return OpenAIEmbedder(settings, model_dir)
    if settings.embed_model == FAKE:
        from qa.embed.fake import FakeEmbedder

        return FakeEmbedder(model_dir)
    verify_weights(model_dir, settings.data_dir)
    if settings.embed_model == "minilm":
        from qa.embed.minilm import MiniLM

        return MiniLM(model_dir, cache_dir=settings.data_dir / "cache")
    if settings.embed_model == "minilm-torch":
        from qa.embed.torch_minilm import TorchMiniLM

        return TorchMiniLM(model_dir)
    raise ConfigError(f"Unknown QA_EMBED_MODEL {settings.embed_model!r}; choose one of: {', '.join(EMBEDDERS)}.")
