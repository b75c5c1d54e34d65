"""The bundled encoder: verified by hash, and the NumPy path equals sentence-transformers'."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_FILE

from qa import ConfigError
from qa.embed import MiniLM, TorchMiniLM, bundled_model_dir, verify_weights


@pytest.mark.slow
def test_numpy_encoder_matches_sentence_transformers() -> None:
    texts = [line for line in SEED_FILE.read_text(encoding="utf-8").splitlines() if line]
    texts += ["What is Mark Sedwill's job?", "x", "naïve café – 東京 🚀", "word " * 400]
    fast = MiniLM(bundled_model_dir()).embed(texts)
    reference = TorchMiniLM(bundled_model_dir()).embed(texts)
    cosines = (fast * reference).sum(axis=1)
    assert cosines.min() >= 0.9999
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_weights_with_a_wrong_hash_are_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model"
    fake.mkdir()
    shutil.copy(bundled_model_dir() / "tokenizer.json", fake)
    (fake / "model.safetensors").write_bytes(b"not the real weights")
    with pytest.raises(ConfigError, match="refusing to run"):
        verify_weights(fake, tmp_path / "cache")


def test_bundled_weights_pass_the_hash_check(tmp_path: Path) -> None:
    verify_weights(bundled_model_dir(), tmp_path / "cache")
    assert (tmp_path / "cache" / "verified-weights.json").is_file()
