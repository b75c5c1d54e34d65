"""The bundled encoder: verified by hash, and both fast paths (NumPy, ONNX Runtime) equal sentence-transformers'."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_FILE

from qa import ConfigError
from qa.embed import MiniLM, TorchMiniLM, bundled_model_dir, verify_weights

TEXTS = [line for line in SEED_FILE.read_text(encoding="utf-8").splitlines() if line]
TEXTS += [
    "What is Mark Sedwill's job?",
    "x",
    "naïve café – 東京 🚀",
    "Return a new view of the dictionary's keys; see the :ref:`documentation of view objects <dict-views>`.",
    "word " * 400,
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return TorchMiniLM(bundled_model_dir()).embed(TEXTS)


@pytest.fixture(scope="module")
def built_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with the ONNX graph built once, for the tests that use the graph rather than build it."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    MiniLM(bundled_model_dir(), cache_dir=cache, runtime="onnx").embed(["warm"])
    return cache


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["numpy", "onnx"])
def test_fast_encoders_match_sentence_transformers(runtime: str, reference: np.ndarray, built_graph: Path, tmp_path: Path) -> None:
    shutil.copytree(built_graph, tmp_path, dirs_exist_ok=True)
    encoder = MiniLM(bundled_model_dir(), cache_dir=tmp_path, runtime=runtime)
    vectors = encoder.embed(TEXTS)
    assert encoder.backend == ("onnxruntime" if runtime == "onnx" else "numpy")
    assert (vectors * reference).sum(axis=1).min() >= 0.9999
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_graph_is_built_once_and_reused_from_the_data_dir(built_graph: Path, tmp_path: Path) -> None:
    # built_graph is a cache folder where a first encoder built the graph (into an empty folder)
    [built] = built_graph.glob("minilm-*.onnx")
    assert built.stat().st_size > 1_000_000
    shutil.copytree(built_graph, tmp_path, dirs_exist_ok=True)
    [cached] = tmp_path.glob("minilm-*.onnx")
    built_at = cached.stat().st_mtime_ns

    first = MiniLM(bundled_model_dir(), cache_dir=tmp_path, runtime="onnx")
    before = first.embed(TEXTS[:3])
    second = MiniLM(bundled_model_dir(), cache_dir=tmp_path, runtime="onnx")
    after = second.embed(TEXTS[:3])
    assert cached.stat().st_mtime_ns == built_at and list(tmp_path.glob("minilm-*.onnx")) == [cached]
    assert first.backend == second.backend == "onnxruntime"
    assert (before * after).sum(axis=1).min() >= 0.99999


def test_a_damaged_onnx_cache_is_rebuilt(built_graph: Path, tmp_path: Path) -> None:
    shutil.copytree(built_graph, tmp_path, dirs_exist_ok=True)
    [cached] = tmp_path.glob("minilm-*.onnx")
    cached.write_bytes(b"not an onnx model")

    vectors = MiniLM(bundled_model_dir(), cache_dir=tmp_path, runtime="onnx").embed(TEXTS[:3])
    reference = MiniLM(bundled_model_dir(), runtime="numpy").embed(TEXTS[:3])
    assert (vectors * reference).sum(axis=1).min() >= 0.9999
    assert cached.stat().st_size > 1_000_000


def test_a_question_is_embedded_without_loading_onnx_runtime(tmp_path: Path) -> None:
    encoder = MiniLM(bundled_model_dir(), cache_dir=tmp_path)
    encoder.embed(["What is Mark Sedwill's job?"])
    assert encoder.backend == "onnxruntime (not loaded yet)"
    assert not list(tmp_path.glob("*.onnx"))


def test_a_large_batch_goes_through_onnx_runtime(tmp_path: Path) -> None:
    encoder = MiniLM(bundled_model_dir(), cache_dir=tmp_path)
    batch = [f"Sentence number {i} of a long document about the city's history." for i in range(300)]
    assert sum(encoder.count_tokens(batch)) > 4096  # the most word pieces NumPy is given at once
    encoder.embed(batch)
    assert encoder.backend == "onnxruntime"
    assert list(tmp_path.glob("minilm-*.onnx"))


@pytest.mark.parametrize("runtime", ["numpy", "onnx"])
def test_repeated_texts_get_the_same_vector(runtime: str, built_graph: Path, tmp_path: Path) -> None:
    shutil.copytree(built_graph, tmp_path, dirs_exist_ok=True)
    encoder = MiniLM(bundled_model_dir(), cache_dir=tmp_path, runtime=runtime)
    texts = ["Example Domain", "It works.", "Example Domain"] * 8
    vectors = encoder.embed(texts)
    alone = encoder.embed(["Example Domain"])[0]
    assert vectors.shape == (24, 384)
    assert np.array_equal(vectors[0], vectors[2])
    assert float(vectors[0] @ alone) >= 0.9999


def test_unknown_runtime_is_refused() -> None:
    with pytest.raises(ConfigError, match="choose one of: auto, onnx, numpy"):
        MiniLM(bundled_model_dir(), runtime="cuda")


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


def test_the_fake_embedder_is_deterministic_and_ranks_by_shared_words() -> None:
    from qa.embed import FakeEmbedder

    sentences = [
        "Britain's national security adviser Mark Sedwill called the move a powerful message.",
        "Russia said it would close the American consulate in St Petersburg.",
        "¡!",
    ]
    first = FakeEmbedder(bundled_model_dir()).embed(sentences)
    again = FakeEmbedder(bundled_model_dir()).embed(sentences)
    question = FakeEmbedder(bundled_model_dir()).embed(["Who is Mark Sedwill?"])[0]
    assert np.array_equal(first, again)
    assert first.shape == (3, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert float(first[0] @ question) > float(first[1] @ question) + 0.2


def test_the_fake_embedder_counts_tokens_like_the_real_model() -> None:
    from qa.embed import FakeEmbedder

    assert FakeEmbedder(bundled_model_dir()).count_tokens(TEXTS) == MiniLM(bundled_model_dir()).count_tokens(TEXTS)


def test_the_fake_embedder_loads_neither_torch_nor_onnx_runtime(tmp_path: Path) -> None:
    code = (
        "import sys; from qa import Settings; from qa.embed import make_embedder; "
        f"e = make_embedder(Settings(embed_model='fake', data_dir={str(tmp_path)!r}, _env_file=None)); e.embed(['x']); "
        "print(e.name, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'safetensors')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "fake (hashed words, tests only) []"


def test_the_fake_embedder_is_picked_only_by_its_exact_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qa import Settings
    from qa.embed import make_embedder

    from qa.settings import load_settings

    monkeypatch.setenv("QA_EMBED_MODEL", "Fake")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "choose one of: minilm, minilm-torch, openai." in str(error.value)  # and never offered to users
    monkeypatch.delenv("QA_EMBED_MODEL")  # what a user runs: the bundled model
    assert isinstance(make_embedder(Settings(data_dir=tmp_path, _env_file=None)), MiniLM)
