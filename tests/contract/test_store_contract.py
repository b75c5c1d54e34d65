"""The `Store` contract: every store (Chroma, the in-memory one) passes the same tests.

A new store is one class that passes these: add it to `STORES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED_FILE, SEEDS

from qa import Engine, Settings
from qa.errors import EmbeddingMismatchError
from qa.memory_store import MemoryStore
from qa.store import ChromaStore, Store
from qa.types import Chunk, Sentence

DIM = 384


def _chroma(settings: Settings) -> Store:
    return ChromaStore(settings)


STORES: dict[str, Callable[[Settings], Store]] = {"chroma": _chroma, "memory": MemoryStore}


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    settings = Settings(data_dir=tmp_path / ".qa", _env_file=None)
    yield lambda: STORES[request.param](settings)


def _chunk(n: int, *, source: str = "a.txt", sentences: int = 2, page: int | None = None) -> Chunk:
    parts = [f"Sentence {n}.{i} says fact {n * 10 + i}." for i in range(sentences)]
    start = n * 1000
    spans, at = [], start
    for part in parts:
        spans.append(Sentence(at, at + len(part)))
        at += len(part) + 1
    return Chunk(
        id=f"{source}-{n}", source=source, title=f"Title of {source}", paragraph=n, start=start, end=at - 1,
        text=" ".join(parts), sentences=tuple(spans), file_hash=f"hash-{source}", page=page, section="A › B",
        root="/docs", markup="",
    )


def _vectors(chunks: list[Chunk], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for chunk in chunks:
        v = rng.standard_normal((len(chunk.sentences), DIM)).astype(np.float32)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return out


def test_chunks_read_back_as_written_with_their_offsets(make_store: Callable[[], Store]) -> None:
    store = make_store()
    chunks = [_chunk(1, page=3), _chunk(0), _chunk(2, source="b.txt", sentences=3)]
    store.add(chunks, _vectors(chunks), root="/docs")
    got = store.all_chunks()
    assert got == sorted(chunks, key=lambda c: (c.source, c.start))  # every field, page and heading path included
    assert all(c.sentence_texts()[0].startswith("Sentence") for c in got)
    assert store.count() == 3


def test_nearest_sentence_comes_first_with_its_cosine(make_store: Callable[[], Store]) -> None:
    store = make_store()
    chunks = [_chunk(i) for i in range(5)]
    vectors = _vectors(chunks)
    store.add(chunks, vectors, root="/docs")
    target = vectors[3][1]
    hits = store.dense_sentences(target, 4)
    assert (hits[0].chunk_id, hits[0].index) == (chunks[3].id, 1)
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    other = hits[1]  # any other hit: its real cosine
    stored = vectors[int(other.chunk_id.rpartition("-")[2])][other.index]
    assert other.similarity == pytest.approx(float(stored @ target), abs=1e-4)


def test_sentence_vectors_are_the_stored_ones(make_store: Callable[[], Store]) -> None:
    store = make_store()
    chunks = [_chunk(0), _chunk(1)]
    vectors = _vectors(chunks)
    store.add(chunks, vectors, root="/docs")
    got = store.sentence_vectors([(chunks[1].id, 0), (chunks[0].id, 1), ("missing", 0)])
    assert set(got) == {(chunks[1].id, 0), (chunks[0].id, 1)}
    np.testing.assert_allclose(got[(chunks[1].id, 0)], vectors[1][0], atol=1e-6)


def test_writing_an_id_again_replaces_it_and_delete_removes_its_sentences(make_store: Callable[[], Store]) -> None:
    store = make_store()
    chunks = [_chunk(0), _chunk(1)]
    store.add(chunks, _vectors(chunks), root="/docs")
    store.add(chunks[:1], _vectors(chunks[:1], seed=1), root="/docs")  # a re-run after a killed ingest
    assert store.count() == 2
    assert len(store.records("sentences")) == 4
    store.delete([chunks[0].id])
    assert [c.id for c in store.all_chunks()] == [chunks[1].id]
    assert sorted(r.id for r in store.records("sentences")) == [f"{chunks[1].id}:0", f"{chunks[1].id}:1"]
    assert all(h.chunk_id == chunks[1].id for h in store.dense_sentences(_vectors(chunks)[0][0], 10))


def test_documents_and_ids_by_source_and_root(make_store: Callable[[], Store]) -> None:
    store = make_store()
    a = [_chunk(0), _chunk(1)]
    b = [_chunk(2, source="b.txt")]
    store.add(a, _vectors(a), root="/docs")
    store.add(b, _vectors(b), root="/other")
    assert store.chunk_ids_by_source("/docs") == {"a.txt": {a[0].id: "hash-a.txt", a[1].id: "hash-a.txt"}}
    assert store.chunk_ids_of_source("b.txt") == {"/other": [b[0].id]}
    docs = store.document_records()
    assert [(d["source"], d["root"], d["chunks"]) for d in docs] == [("a.txt", "/docs", 2), ("b.txt", "/other", 1)]
    assert all(isinstance(d["indexed_at"], float) for d in docs)
    assert store.collection_names() == ["qa"]


def test_missing_vectors_and_orphans_are_found_and_removed(make_store: Callable[[], Store]) -> None:
    store = make_store()
    chunks = [_chunk(0), _chunk(1)]
    store.add(chunks, _vectors(chunks), root="/docs")
    store.delete_sentences([f"{chunks[0].id}:1"])
    assert store.damaged_chunks(chunks) == {chunks[0].id}
    assert store.unreadable("sentences", [f"{chunks[0].id}:1", f"{chunks[1].id}:1"]) == {f"{chunks[0].id}:1"}
    assert store.unreadable("chunks", [chunks[1].id, "nope"]) == {"nope"}
    records = {r.id: r for r in store.records("chunks")}
    assert (records[chunks[0].id].root, records[chunks[0].id].sentences) == ("/docs", 2)


def test_every_write_changes_the_generation_and_the_writer_mark_spans_the_write(make_store: Callable[[], Store]) -> None:
    store = make_store()
    before = store.state()
    assert before.writer is None
    store.begin_write()
    assert store.state() == before  # nothing written yet: readers have no reason to reload
    chunks = [_chunk(0)]
    store.add(chunks, _vectors(chunks), root="/docs")
    during = store.state()
    assert during.generation != before.generation and during.writer is not None
    store.end_write()
    after = store.state()
    assert after.writer is None and after.generation != during.generation
    assert store.current_generation() == (after.generation, False)  # this client wrote it


def test_vectors_of_another_size_are_refused_and_drop_starts_afresh(make_store: Callable[[], Store]) -> None:
    store = make_store()
    chunks = [_chunk(0)]
    store.add(chunks, _vectors(chunks), root="/docs")
    with pytest.raises(EmbeddingMismatchError, match="--rebuild"):
        store.add([_chunk(1)], [np.ones((2, 16), dtype=np.float32)], root="/docs")
    store.drop()
    assert store.all_chunks() == [] or not store.exists


def test_an_engine_on_the_store_ingests_and_answers_with_citations(make_store: Callable[[], Store], tmp_path: Path) -> None:
    store = make_store()
    engine = Engine(store.settings.model_copy(update={"seeds_dir": SEEDS}), store=store)
    report = engine.ingest(SEEDS)
    assert report.chunks_embedded == store.count() > 0
    answer = engine.ask("What is Mark Sedwill's job?")
    assert "national security adviser" in answer.text
    text = SEED_FILE.read_text(encoding="utf-8")
    assert answer.citations and all(text[c.start : c.end] == c.quote for c in answer.citations)
    assert engine.ingest(SEEDS).chunks_embedded == 0  # unchanged: nothing embedded again
    assert engine.delete_document(SEED_FILE.name) and store.count() == 0


def test_qa_check_finds_a_chunk_that_lost_a_sentence_vector(make_store: Callable[[], Store]) -> None:
    from qa.check import inspect

    store = make_store()
    chunks = [_chunk(0), _chunk(1), _chunk(2, source="b.txt")]
    store.add(chunks, _vectors(chunks), root="/docs")
    assert inspect(store).healthy and inspect(store).summary() == "3 chunks and 6 sentences, every vector and text readable."
    store.delete_sentences([f"{chunks[1].id}:0"])
    found = inspect(store)
    assert found.chunks_lacking_sentences == [chunks[1].id] and found.roots == ["/docs"]
    assert found.damaged_chunks == {chunks[1].id} and not found.healthy
