"""The query path reads Chroma and the corpus cache directly, with the results the slower routes gave."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import ROOT

from qa import Engine
from qa.retrieve import Corpus

QUESTIONS = [
    "Who is the UN Secretary General mentioned?",
    "How many US diplomats will Russia expel?",
    "What is Mark Sedwill's job?",
    "Where was the nerve agent attack?",
]


def test_dense_hits_equal_a_query_through_llama_index(seed_engine: Engine) -> None:
    from llama_index.core.vector_stores.types import VectorStoreQuery

    store = seed_engine.store
    n = store.sentences.count()
    rng = np.random.default_rng(0)
    vectors = list(seed_engine.embedder.embed(QUESTIONS)) + [v / np.linalg.norm(v) for v in rng.standard_normal((4, 384))]
    for vector in vectors:
        for k in (1, 5, 50):
            direct = store.dense_sentences(np.asarray(vector, dtype=np.float32), k)
            result = store.sentence_store.query(VectorStoreQuery(query_embedding=vector.tolist(), similarity_top_k=min(k, n)))
            # ChromaVectorStore reports exp(-distance); the collection's cosine distance is 1 - cos.
            via_llama = [
                (str(node.metadata["chunk_id"]), int(node.metadata["index"]), 1.0 + float(np.log(sim)))
                for node, sim in zip(result.nodes, result.similarities)
            ]
            assert [(h.chunk_id, h.index) for h in direct] == [(c, i) for c, i, _ in via_llama]
            assert np.allclose([h.similarity for h in direct], [s for _, _, s in via_llama], atol=1e-6, rtol=0)
    assert len(store.dense_sentences(np.asarray(vectors[0], dtype=np.float32), 50)) == min(50, n)


def test_asking_imports_no_llama_index(seed_data_dir: Path) -> None:
    code = (
        "import json, sys; from qa import Engine, Settings;"
        f"a = Engine(Settings(data_dir={str(seed_data_dir)!r}, _env_file=None)).ask({QUESTIONS[0]!r});"
        "print(json.dumps([a.text, sorted({m.split('.')[0] for m in sys.modules} & {'llama_index', 'torch', 'transformers', 'sentence_transformers'})]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    text, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Guterres" in text
    assert heavy == []


def _same_corpus(got: Corpus, want: Corpus) -> None:
    assert list(got.chunks) == list(want.chunks)
    assert got.position == want.position
    assert list(got.sentence_owner) == list(want.sentence_owner)
    assert got.first_sentence == want.first_sentence
    assert [got.sentence_terms[r] for r in range(len(want.sentence_terms))] == list(want.sentence_terms)
    assert got.doc_freq == want.doc_freq
    assert got.vocab == want.vocab
    for terms in (["russia"], ["diplomat", "expel", "russia"], ["guterr", "secretari", "general"], ["nerv", "agent"]):
        assert np.array_equal(got.bm25_scores(terms), want.bm25_scores(terms))


def test_the_saved_corpus_loads_equal_to_a_fresh_build(seed_engine: Engine, tmp_path: Path) -> None:
    store = seed_engine.store
    fresh = Corpus(store.all_chunks())
    cache = tmp_path / "cache"
    built = Corpus.load(store, cache)  # builds and saves
    [saved] = cache.iterdir()
    assert not list(cache.rglob("*.pkl"))
    loaded = Corpus.load(store, cache)
    assert not isinstance(loaded.chunks, list)  # read from the saved arrays, not rebuilt
    for corpus in (built, loaded):
        _same_corpus(corpus, fresh)
    assert loaded.chunks[-1] == fresh.chunks[-1] and loaded.chunks[1:3] == fresh.chunks[1:3]
    assert loaded.sentence_owner[-1] == fresh.sentence_owner[-1]

    (saved / "columns.npz").write_bytes((saved / "columns.npz").read_bytes()[:5000])  # damaged: rebuilt, not trusted
    _same_corpus(Corpus.load(store, cache), fresh)
    assert not isinstance(Corpus.load(store, cache).chunks, list)  # and saved again


def test_a_new_generation_replaces_the_saved_corpus(seed_engine: Engine, tmp_path: Path) -> None:
    cache = seed_engine.settings.data_dir / "cache"

    def saved() -> set[str]:
        return {p.name for p in cache.glob("corpus-*")}

    before = saved()  # the seed index's copy, saved under the path it was built at
    assert seed_engine.ask(QUESTIONS[0]).citations
    [first] = saved() - before
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "extra.txt").write_text("The harbour of Valdemora is guarded by a copper lighthouse.\n", encoding="utf-8")
    seed_engine.ingest(docs)
    assert "copper lighthouse" in seed_engine.ask("What guards the harbour of Valdemora?").text
    [second] = saved() - before
    assert second != first  # the earlier generation's copy is gone
    fresh = Engine(seed_engine.settings)  # as a new process: reads the saved copy
    assert "copper lighthouse" in fresh.ask("What guards the harbour of Valdemora?").text
    assert not isinstance(fresh.corpus.chunks, list)
