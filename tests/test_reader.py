"""The reader's code (issue 18): what training writes is what run time computes, and a changed file is refused.

The reader is not shipped (it did not help on the fitting data: bench/results/reader.json and
reader-retry.json, eval/README.md); these tests build small artifacts from the bundled weights with the
training code (the first run's shape: layers 4-5 trained, 128 word pieces; the retry's: all six, 96) and
read them back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from qa.answer.reader import LAYERS, load_reader, read_artifact
from qa.errors import ConfigError

# Written for these tests (not from any eval set).
QUESTION = "Who leads the children's club?"
SENTENCES = [
    "The library's children's club meets on Thursday afternoons and is led by Priya Raman.",
    "Printing costs 10 pence a page; scanning is free.",
]


@pytest.fixture(scope="module", params=[(2, 128), (6, 96)], ids=["layers-4-5", "all-layers"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object, int, int]:
    import torch

    from qa.answer import reader_train
    from qa.answer.reader import bundled_tensors
    from qa.embed import bundled_model_dir

    trainable, max_tokens = request.param
    saved = reader_train.FROM
    reader_train.FROM = LAYERS - trainable
    try:
        torch.manual_seed(reader_train.SEED)
        upper = reader_train.build_upper(bundled_tensors(bundled_model_dir()))
        with torch.no_grad():  # a head that is not ~0, so the comparison below means something
            upper.head.weight.normal_(0.0, 0.5)
        upper.eval()
        meta = {"fitting_data": "none (a test)", "trained_from": LAYERS - trainable, "max_tokens": max_tokens}
        raw = reader_train.artifact_bytes(upper, {"coef": [1.0, 0.5], "intercept": -0.25, "threshold": 0.2, "top": 2}, meta)
    finally:
        reader_train.FROM = saved
    path = tmp_path_factory.mktemp("reader") / "reader.safetensors"
    path.write_bytes(raw)
    return path, hashlib.sha256(raw).hexdigest(), upper, LAYERS - trainable, max_tokens


def test_a_changed_or_missing_reader_model_is_refused_with_the_command_that_rebuilds_it(built: tuple[Path, str, object, int, int], tmp_path: Path) -> None:
    path, sha, *_ = built
    altered = tmp_path / "reader.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    altered.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="make train-reader"):
        load_reader(altered, sha)
    with pytest.raises(ConfigError, match="missing.*make train-reader"):
        load_reader(tmp_path / "nowhere.safetensors", sha)


def test_the_artifact_holds_only_the_trained_layers(built: tuple[Path, str, object, int, int]) -> None:
    path, _, _, trained_from, _ = built
    assert path.stat().st_size < (LAYERS - trained_from) * 3.7e6  # 1.77M float16 weights a layer
    tensors, meta = read_artifact(path.read_bytes())
    assert {name.split(".")[1] for name in tensors if name.startswith("layer.")} == {str(i) for i in range(trained_from, LAYERS)}
    assert json.loads(meta["stack"])["top"] == 2


def test_the_numpy_reader_computes_what_torch_trained(built: tuple[Path, str, object, int, int]) -> None:
    """Run time (NumPy, no torch) and training (torch) give the same logits for the same pairs, up to float16 weights."""
    import torch

    from qa.answer import reader_train
    from qa.answer.reader import bundled_tensors
    from qa.embed import bundled_model_dir

    path, sha, upper, trained_from, _ = built
    reader = load_reader(path, sha)
    tensors = bundled_tensors(bundled_model_dir())
    ids, seg, mask = reader_train.pad(reader.tokens.pairs(QUESTION, SENTENCES))
    saved = reader_train.FROM
    reader_train.FROM = trained_from
    try:
        with torch.no_grad():
            expected = upper(reader_train.Lower(tensors)(ids, seg, mask), mask).numpy()  # type: ignore[operator]
    finally:
        reader_train.FROM = saved
    got = reader.logits(QUESTION, SENTENCES)
    assert got.shape == (2,) and np.allclose(got, expected, atol=2e-2)
    assert abs(got[0] - got[1]) > 0.05  # the two sentences are told apart, so a mix-up of rows would fail


def test_a_long_sentence_is_cut_to_the_readers_window(built: tuple[Path, str, object, int, int]) -> None:
    path, sha, _, _, max_tokens = built
    reader = load_reader(path, sha)
    long = "The reading room reopens on 4 May. " * 60
    ((ids, segments),) = reader.tokens.pairs("When does the reading room reopen?", [long])
    assert len(ids) == len(segments) == max_tokens and ids[-1] == reader.tokens.sep
    assert np.isfinite(reader.logits("When does the reading room reopen?", [long])).all()


def test_the_same_weights_give_the_same_file(built: tuple[Path, str, object, int, int]) -> None:
    """safetensors writes its metadata in hash-map order; the artifact's bytes (and so its sha256) must not follow it."""
    from qa.answer import reader_train

    path, sha, upper, trained_from, _ = built
    tensors, meta = read_artifact(path.read_bytes())
    saved = reader_train.FROM
    reader_train.FROM = trained_from
    try:
        again = {reader_train.artifact_bytes(upper, json.loads(meta["stack"]), json.loads(meta["meta"])) for _ in range(8)}
    finally:
        reader_train.FROM = saved
    assert {hashlib.sha256(raw).hexdigest() for raw in again} == {sha}
    assert np.array_equal(read_artifact(again.pop())[0]["head.weight"], tensors["head.weight"])
