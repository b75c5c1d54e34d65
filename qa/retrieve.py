"""Hybrid retrieval: dense sentence vectors (Chroma) + BM25 over sentences, fused by reciprocal rank.

Sentences are ranked, chunks are returned: a chunk scores by its best sentence, so a precise
sentence match brings its whole passage along for the answerer and the citations.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.text import STOPWORDS, words
from qa.types import Chunk

if TYPE_CHECKING:
    from qa.embed import Embedder
    from qa.store import Store

log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 50
_CACHE_VERSION = 4


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def lexical_terms(text: str, stemmer: Any) -> list[str]:
    """BM25 terms: words without stop words, stemmed."""
    return list(stemmer.stemWords([w for w in words(text) if w not in STOPWORDS]))


def _quiet_bm25s() -> None:
    # bm25s sets its own logger to DEBUG on import, which would print through the CLI's handler.
    logging.getLogger("bm25s").setLevel(logging.WARNING)


class Corpus:
    """Everything retrieval keeps in memory: the chunks, a flat sentence table and its BM25 index."""

    def __init__(self, chunks: list[Chunk]) -> None:
        import bm25s

        _quiet_bm25s()
        self.chunks = chunks
        self.position = {c.id: i for i, c in enumerate(chunks)}
        self.sentence_owner: list[tuple[int, int]] = []
        texts: list[str] = []
        for ci, chunk in enumerate(chunks):
            for si, text in enumerate(chunk.sentence_texts()):
                self.sentence_owner.append((ci, si))
                texts.append(text)
        self.first_sentence = {}
        for row, (ci, si) in enumerate(self.sentence_owner):
            if si == 0:
                self.first_sentence[ci] = row
        stemmer = _stemmer()
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        # A sentence is about its document's title even when it says "it" or "their".
        # Titles are left out of BM25 (they blur which paragraph matches) but count for coverage.
        title_terms = {c.title: lexical_terms(c.title, stemmer) for c in chunks}
        tokens = [lexical_terms(t, stemmer) or ["\u2205"] for t in texts]
        self.sentence_terms = [
            frozenset(t + title_terms[chunks[ci].title]) for t, (ci, _) in zip(tokens, self.sentence_owner)
        ]
        self.doc_freq: dict[str, int] = {}
        for toks in tokens:
            for term in set(toks):
                self.doc_freq[term] = self.doc_freq.get(term, 0) + 1
        if tokens:
            self.bm25.index(tokens, show_progress=False)
        self.vocab: set[str] = set(self.bm25.vocab_dict) if tokens else set()

    def __len__(self) -> int:
        return len(self.chunks)

    def sentence_row(self, chunk_index: int, sentence_index: int) -> int:
        return self.first_sentence[chunk_index] + sentence_index

    @classmethod
    def load(cls, store: Store, cache_dir: Path) -> Corpus:
        """Build from the store, or reuse the pickled copy made for the same store generation."""
        key = hashlib.sha256(f"{_CACHE_VERSION}:{store.settings.describe_store()}:{store.settings.collection}".encode()).hexdigest()[:16]
        path = cache_dir / f"corpus-{key}.pkl"
        generation = store.generation()
        if path.is_file():
            try:
                with path.open("rb") as fh:
                    cached_generation, corpus = pickle.load(fh)
                if cached_generation == generation and isinstance(corpus, cls):
                    return corpus
            except Exception:  # a stale or truncated cache is rebuilt, never trusted
                log.debug("ignoring unreadable cache %s", path)
        corpus = cls(store.all_chunks())
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as fh:
                pickle.dump((generation, corpus), fh, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(path)
        except OSError:
            log.debug("could not write cache %s", path)
        return corpus

    def bm25_scores(self, terms: list[str]) -> np.ndarray:
        known = [t for t in terms if t in self.vocab]
        if not known or not self.chunks:
            return np.zeros(len(self.sentence_owner), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(known), dtype=np.float32)


@dataclass
class SentenceScore:
    chunk: int
    index: int
    dense: float
    bm25: float
    rrf: float


@dataclass
class Retrieval:
    """Ranked chunks with the evidence behind the ranking, for the answerer and the eval harness."""

    query: str
    chunks: list[Chunk]
    chunk_scores: list[float]
    sentences: dict[tuple[int, int], SentenceScore] = field(default_factory=dict)
    query_vector: np.ndarray | None = None
    bm25_max: float = 0.0


class Retriever:
    def __init__(self, store: Store, corpus: Corpus, embedder: Embedder) -> None:
        self.store = store
        self.corpus = corpus
        self.embedder = embedder
        self.stemmer = _stemmer()

    def retrieve(self, query: str, k: int, *, mode: str = "hybrid") -> Retrieval:
        """Top-`k` chunks for `query`; `mode` is `hybrid`, `dense` or `bm25`."""
        corpus = self.corpus
        if not corpus.chunks:
            return Retrieval(query, [], [])
        vector = self.embedder.embed([query])[0]
        fused: dict[int, float] = {}
        dense_sim: dict[int, float] = {}
        if mode in ("hybrid", "dense"):
            for rank, hit in enumerate(self.store.dense_sentences(vector, CANDIDATES, available=len(corpus.sentence_owner))):
                ci = corpus.position.get(hit.chunk_id)
                if ci is None:
                    continue
                row = corpus.sentence_row(ci, hit.index)
                dense_sim[row] = hit.similarity
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        bm25 = corpus.bm25_scores(lexical_terms(query, self.stemmer))
        if mode in ("hybrid", "bm25"):
            top = np.argsort(-bm25, kind="stable")[:CANDIDATES]
            for rank, row in enumerate(int(r) for r in top):
                if bm25[row] <= 0:
                    break
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        best: dict[int, float] = {}
        for row, score in fused.items():
            ci = corpus.sentence_owner[row][0]
            best[ci] = max(best.get(ci, 0.0), score)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        chunks = [corpus.chunks[ci] for ci, _ in ranked]
        retrieval = Retrieval(query, chunks, [s for _, s in ranked], query_vector=vector, bm25_max=float(bm25.max(initial=0.0)))
        vectors = self.store.sentence_vectors([(c.id, i) for c in chunks for i in range(len(c.sentences))])
        for ci, _ in ranked:
            chunk = corpus.chunks[ci]
            for si in range(len(chunk.sentences)):
                row = corpus.sentence_row(ci, si)
                vec = vectors.get((chunk.id, si))
                dense = float(vec @ vector) if vec is not None else dense_sim.get(row, 0.0)
                retrieval.sentences[(ci, si)] = SentenceScore(ci, si, dense, float(bm25[row]), fused.get(row, 0.0))
        return retrieval
