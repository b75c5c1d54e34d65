"""`qa check [--repair]` and ingest's check of what it skips, on stores damaged the ways concurrent writers
damaged them: vectors that can't be read back ("Error finding id"), and vector files whose loading
fails or segfaults."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from concurrent_ingest import QA, verify, write_folder
from conftest import SEED_FILE, SEEDS

pytestmark = pytest.mark.integration

SEDWILL = "What is Mark Sedwill's job?"


def _qa(*args: str | Path, data: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "QA_DATA_DIR": str(data), **env}
    return subprocess.run([str(QA), *map(str, args)], env=environ, capture_output=True, text=True, timeout=timeout)


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: ")
    return line


def _vector_segment(data: Path, collection: str) -> Path:
    with sqlite3.connect(data / "chroma" / "chroma.sqlite3") as conn:
        [(segment,)] = conn.execute(
            "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id WHERE s.scope = 'VECTOR' AND c.name = ?",
            (collection,),
        ).fetchall()
    return data / "chroma" / segment


def lose_sentence_vectors(data: Path, like: str = "%:1") -> int:
    """What a second writer did to the first one's work: sentence records whose vectors can't be read back.

    The vectors go from Chroma's write log and its saved index, so the index rebuilt on the next open
    lacks them, while their records stay.
    """
    with sqlite3.connect(data / "chroma" / "chroma.sqlite3") as conn:
        lost = conn.execute("DELETE FROM embeddings_queue WHERE id LIKE ?", (like,)).rowcount
    for path in _vector_segment(data, "qa-sentences").iterdir():
        path.unlink()
    return lost


def scramble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(1)
    for i in range(0, len(data), 7):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """The seed article ingested by a `qa ingest` process, once per module (this process never opens the store)."""
    root = tmp_path_factory.mktemp("store-check")
    docs = shutil.copytree(SEEDS, root / "docs")
    data = root / ".qa"
    done = _qa("ingest", "--json", docs, data=data)
    assert done.returncode == 0, done.stderr
    asked = _qa("ask", "--json", SEDWILL, data=data)
    assert asked.returncode == 0, asked.stderr
    return docs, data, json.loads(asked.stdout)


@pytest.fixture
def indexed(_pristine: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A copy of the module's pristine store for this test to damage; the documents are shared and never changed."""
    docs, data, answer = _pristine
    shutil.copytree(data, tmp_path / ".qa")
    return docs, tmp_path / ".qa", answer


def test_check_says_a_healthy_store_is_healthy(indexed: tuple[Path, Path, dict[str, Any]]) -> None:
    _docs, data, _answer = indexed
    done = _qa("check", data=data)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "The store is healthy: 7 chunks and 24 sentences, every vector and text readable.\n"


def test_ingest_reembeds_an_unchanged_chunk_whose_vectors_were_lost(indexed: tuple[Path, Path, dict[str, Any]]) -> None:
    docs, data, answer = indexed
    lost = lose_sentence_vectors(data)
    assert lost == 7  # one sentence in each chunk
    assert verify(data)[0]["sentences"]["unreadable"] == 7
    done = _qa("ingest", "--json", docs, data=data)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["unchanged"] == [SEED_FILE.name]
    assert (report["chunks_embedded"], report["chunks_repaired"], report["chunks_deleted"]) == (7, 7, 0)
    assert verify(data)[0] == {"sentences": {"ids": 24, "unreadable": 0}, "chunks": {"ids": 7, "unreadable": 0, "sentences_missing": 0}}
    again = json.loads(_qa("ingest", "--json", docs, data=data).stdout)
    assert (again["chunks_embedded"], again["chunks_repaired"]) == (0, 0)
    asked = _qa("ask", "--json", SEDWILL, data=data)
    assert json.loads(asked.stdout)["text"] == answer["text"]


def test_check_finds_lost_vectors_and_repair_reembeds_them(indexed: tuple[Path, Path, dict[str, Any]]) -> None:
    _docs, data, answer = indexed
    lost = lose_sentence_vectors(data, like="%:2")  # the third sentence of each chunk that has one
    assert lost == 5
    line = _one_line_error(_qa("check", data=data))
    assert line == (
        "Error: The store is damaged: 5 sentences can't be read back (of 7 chunks, 24 sentences). "
        "Run `qa check --repair` to rebuild it from the documents on disk."
    )
    done = _qa("check", "--repair", "--json", data=data)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["before"]["unreadable_sentences"] == 5 and result["after"]["healthy"]
    assert any("5 chunks embedded (5 repaired)" in line for line in result["repairs"])
    assert _qa("check", data=data).returncode == 0
    assert json.loads(_qa("ask", "--json", SEDWILL, data=data).stdout)["text"] == answer["text"]


@pytest.fixture(scope="module")
def _big_pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A store past Chroma's in-log threshold, so its vectors live in the index files (fake embedder: seconds)."""
    root = tmp_path_factory.mktemp("big-store")
    docs = root / "docs"
    write_folder(docs, files=300, tag="big", round_no=1)
    data = root / ".qa"
    env = {"QA_EMBED_MODEL": "fake"}
    done = _qa("ingest", docs, data=data, **env)
    assert done.returncode == 0, done.stderr
    return docs, data, env


@pytest.fixture
def big_store(_big_pristine: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the module's big store for this test to damage (built once: 600 chunks cost seconds)."""
    docs, data, env = _big_pristine
    shutil.copytree(data, tmp_path / ".qa")
    return docs, tmp_path / ".qa", env


def test_a_store_that_segfaults_on_open_is_reported_in_one_line_and_rebuilt_by_repair(
    big_store: tuple[Path, Path, dict[str, str]],
) -> None:
    docs, data, env = big_store
    scramble(_vector_segment(data, "qa-sentences") / "data_level0.bin")
    store, problem = verify(data)
    assert "crashed (exit -11" in problem  # chromadb itself dies of SIGSEGV opening it

    line = _one_line_error(_qa("check", data=data, **env))
    assert line == (
        f"Error: The store is damaged: Opening embedded chroma at {data / 'chroma'} crashed the checking process: "
        "a segfault (SIGSEGV). Run `qa check --repair` to rebuild it from the documents on disk."
    )
    done = _qa("check", "--repair", data=data, **env)
    assert done.returncode == 0, done.stderr
    [aside] = data.glob("chroma.broken-*")  # kept, not deleted
    assert f"Moved the store that can't be opened to {aside}" in done.stdout
    assert f"Re-indexed {docs}: 600 chunks embedded" in done.stdout
    assert done.stdout.splitlines()[-1] == "The store is healthy: 600 chunks and 1500 sentences, every vector and text readable."


def test_a_store_whose_index_fails_to_load_is_reported_in_one_line(big_store: tuple[Path, Path, dict[str, str]]) -> None:
    _docs, data, env = big_store
    scramble(_vector_segment(data, "qa-sentences") / "header.bin")
    line = _one_line_error(_qa("check", data=data, **env))
    assert line.startswith(f"Error: The store is damaged: Opening embedded chroma at {data / 'chroma'} failed: ")
    assert "Error loading hnsw index" in line and line.endswith("Run `qa check --repair` to rebuild it from the documents on disk.")


def test_a_store_that_hangs_on_open_is_reported_in_one_line(indexed: tuple[Path, Path, dict[str, Any]]) -> None:
    _docs, data, _answer = indexed
    holder = sqlite3.connect(data / "chroma" / "chroma.sqlite3", timeout=0, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # Chroma would wait 1000 s for it
        done = _qa("check", data=data, QA_CHECK_TIMEOUT="1")
        # Repair leaves a store that another process holds alone, rather than rebuilding it.
        repaired = _qa("check", "--repair", data=data, QA_CHECK_TIMEOUT="1", QA_LOCK_WAIT="0.5")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _one_line_error(done) == (
        f"Error: The store is damaged: Opening embedded chroma at {data / 'chroma'} hung for over 1 s (QA_CHECK_TIMEOUT). "
        "Run `qa check --repair` to rebuild it from the documents on disk."
    )
    assert _one_line_error(repaired) == (
        f"Error: The store at {data / 'chroma'} is locked by another process; retry in a moment."
    )
    assert not list(data.glob("chroma.broken-*"))
    assert _qa("check", data=data).returncode == 0
