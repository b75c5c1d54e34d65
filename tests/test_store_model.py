"""The index records its embedding model; opening it with another is one line that says how to re-index.
An index written before that (through llama-index) still reads as it did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_FILE, SEEDS
from fake_openai import FakeOpenAI, fake_openai, fake_openai_server  # noqa: F401 - fixtures

from qa import Engine, Settings, StoreError
from qa.store import ChromaStore, chroma_errors

QA = Path(sys.executable).parent / "qa"
SEDWILL = "What is Mark Sedwill's job?"


def _qa(*args: str | Path, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "OPENAI_"))}
    environ.update(QA_DATA_DIR=str(data), QA_SEEDS_DIR=str(SEEDS), **env)
    return subprocess.run([str(QA), *map(str, args)], env=environ, capture_output=True, text=True, timeout=300)


def _cli(*args: str | Path, data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`_qa` in this process (CliRunner): the same command, without a process start per step."""
    from click.testing import CliRunner

    from qa.cli import main

    environ: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("QA_", "OPENAI_"))}
    environ.update(QA_DATA_DIR=str(data), QA_SEEDS_DIR=str(SEEDS), **env)
    result = CliRunner().invoke(main, [str(a) for a in args], env=environ)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.mark.slow
def test_changing_the_embedding_model_is_one_line_saying_how_to_reindex(tmp_path: Path, fake_openai: FakeOpenAI) -> None:  # noqa: F811
    data = tmp_path / ".qa"
    assert _qa("ingest", SEEDS, data=data).returncode == 0
    openai = {"QA_EMBED_MODEL": "openai", "QA_LLM_BASE_URL": fake_openai.base_url, "QA_OPENAI_EMBED_MODEL": "fake-embed"}

    for command in (("ask", SEDWILL), ("ingest", SEEDS)):
        done = _cli(*command, data=data, **openai)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.splitlines() == [
            f"Error: The index in embedded chroma at {data / 'chroma'} (collection 'qa') was built with all-MiniLM-L6-v2 "
            "(384 dims), but QA_EMBED_MODEL gives openai:fake-embed. Set QA_EMBED_MODEL back, or re-index with "
            "`qa ingest DIR --rebuild`."
        ]
    assert [r.path for r in fake_openai.requests if r.path.endswith("/embeddings")] == []  # nothing embedded or mixed in

    rebuilt = _cli("ingest", "--rebuild", "--json", SEEDS, data=data, **openai)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["chunks_embedded"] == 7
    again = _cli("ingest", "--json", SEEDS, data=data, **openai)
    assert again.returncode == 0 and json.loads(again.stdout)["chunks_embedded"] == 0  # opens cleanly with its model

    back = _cli("ask", SEDWILL, data=data)
    assert back.returncode == 1
    assert "was built with openai:fake-embed (16 dims), but QA_EMBED_MODEL gives all-MiniLM-L6-v2 (384 dims)" in back.stderr


def _write_as_before(settings: Settings) -> None:
    """Index the seeds the way the code before this store did: llama-index's ChromaVectorStore, its metadata."""
    import chromadb
    from llama_index.core.schema import TextNode
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from qa.documents import chunk_document, load_path, root_key
    from qa.embed import make_embedder
    from qa.store import chunk_metadata

    embedder = make_embedder(settings)
    scan = load_path(SEEDS, max_bytes=10_000_000)
    root = root_key(scan.root or SEEDS)
    client = chromadb.PersistentClient(path=str(settings.store_path), settings=chromadb.Settings(anonymized_telemetry=False))
    cols = {k: client.get_or_create_collection(f"qa-{k}", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
            for k in ("chunks", "sentences")}
    sentence_nodes, chunk_nodes = [], []
    for doc in scan.documents:
        for chunk in chunk_document(doc, count_tokens=embedder.count_tokens, max_tokens=settings.chunk_tokens):
            vectors = embedder.embed(chunk.sentence_texts())
            for i, (s, text) in enumerate(zip(chunk.sentences, chunk.sentence_texts())):
                sentence_nodes.append(TextNode(id_=f"{chunk.id}:{i}", text=text, embedding=vectors[i].tolist(), metadata={
                    "chunk_id": chunk.id, "index": i, "source": chunk.source, "root": root, "start": s.start, "end": s.end}))
            mean = vectors.mean(axis=0)
            mean /= np.linalg.norm(mean)
            chunk_nodes.append(TextNode(id_=chunk.id, text=chunk.text, embedding=mean.tolist(),
                                        metadata={**chunk_metadata(chunk, root), "indexed_at": 1.0}))
    ChromaVectorStore(chroma_collection=cols["sentences"]).add(sentence_nodes)
    ChromaVectorStore(chroma_collection=cols["chunks"]).add(chunk_nodes)
    cols["chunks"].modify(metadata={"generation": "old"})
    assert "_node_content" in cols["chunks"].get(limit=1, include=["metadatas"])["metadatas"][0]


@pytest.mark.slow
def test_an_index_written_through_llama_index_still_answers_and_is_not_embedded_again(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _write_as_before(Settings(data_dir=old, _env_file=None, embed_model="minilm"))  # as `qa` below: the real model
    assert _cli("ingest", SEEDS, data=new).returncode == 0

    def ask(data: Path) -> dict[str, object]:
        done = _cli("ask", "--json", SEDWILL, data=data)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        return {"text": answer["text"], "citations": [(c["source"], c["start"], c["end"], c["quote"]) for c in answer["citations"]]}

    assert ask(old) == ask(new)
    check = _cli("check", data=old)
    assert check.returncode == 0 and "The store is healthy: 7 chunks and 24 sentences" in check.stdout
    again = _cli("ingest", "--json", SEEDS, data=old)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["chunks_embedded"] == 0  # its records are kept, not re-embedded
    assert "was built with" not in _cli("ask", SEDWILL, data=old).stderr


def test_store_failures_become_store_errors_with_their_cause_and_our_bugs_pass_through(tmp_path: Path) -> None:
    from chromadb.errors import InternalError

    settings = Settings(data_dir=tmp_path / ".qa", _env_file=None)
    with pytest.raises(StoreError, match="failed: disk I/O error") as caught:
        with chroma_errors(settings):
            raise InternalError("disk I/O error")
    assert isinstance(caught.value.__cause__, InternalError)
    with pytest.raises(TypeError):  # a bug of ours is not a store failure
        with chroma_errors(settings):
            raise TypeError("unsupported operand")

    store = ChromaStore(settings)
    with pytest.raises(AttributeError):
        store.add([SEED_FILE], [np.zeros((1, 384))], root="x")  # type: ignore[list-item]


def test_qa_debug_shows_the_cause_of_a_store_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"QA_CHROMA_HOST": "127.0.0.1", "QA_CHROMA_PORT": str(port)}
    plain = _qa("ask", SEDWILL, data=tmp_path / ".qa", **env)
    assert plain.returncode == 1 and len(plain.stderr.splitlines()) == 1
    assert plain.stderr.startswith(f"Error: Cannot reach the Chroma server at http://127.0.0.1:{port}")
    debug = _qa("ask", SEDWILL, data=tmp_path / ".qa", QA_DEBUG="1", **env)
    assert debug.returncode == 1
    assert "The above exception was the direct cause of the following exception" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.splitlines()[0]
