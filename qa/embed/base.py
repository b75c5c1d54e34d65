"""The one protocol every embedder follows."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...
