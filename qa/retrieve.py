"""Hybrid retrieval: dense sentence vectors (Chroma) + BM25 over sentences, fused by reciprocal rank.

Sentences are ranked, chunks are returned: a chunk scores by its best sentence, so a precise
sentence match brings its whole passage along for the answerer and the citations.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from qa.terms import TermStats, lexical_terms
from qa.terms import stemmer as _stemmer
from qa.types import Chunk, Sentence

if TYPE_CHECKING:
    from qa.embed import Embedder
    from qa.passages import Passages
    from qa.store import Store

log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 50
_CACHE_VERSION = 6  # 6: page, section, root, markup (issue 15)


def _quiet_bm25s() -> None:
    # bm25s sets its own logger to DEBUG on import, which would print through the CLI's handler.
    logging.getLogger("bm25s").setLevel(logging.WARNING)


class Corpus:
    """Everything retrieval keeps in memory: the chunks, a flat sentence table and its BM25 index."""

    def __init__(self, chunks: list[Chunk]) -> None:
        import bm25s

        _quiet_bm25s()
        self.chunks: Sequence[Chunk] = chunks
        self.position = {c.id: i for i, c in enumerate(chunks)}
        texts: list[str] = []
        owners: list[tuple[int, int]] = []
        for ci, chunk in enumerate(chunks):
            for si, text in enumerate(chunk.sentence_texts()):
                owners.append((ci, si))
                texts.append(text)
        self.sentence_owner: Sequence[tuple[int, int]] = owners
        self.first_sentence: dict[int, int] = {}
        for row, (ci, si) in enumerate(self.sentence_owner):
            if si == 0:
                self.first_sentence[ci] = row
        stemmer = _stemmer()
        self.bm25 = bm25s.BM25(k1=1.2, b=0.75)
        # A sentence is about its document's title even when it says "it" or "their".
        # Titles are left out of BM25 (they blur which paragraph matches) but count for coverage.
        # The same holds for its heading path ("Leave › Sick leave"): a row or paragraph under a heading
        # is about what the heading names.
        title_terms = {c.title: lexical_terms(c.title, stemmer) for c in chunks}
        section_terms = {c.section: lexical_terms(c.section, stemmer) for c in chunks}
        tokens = [lexical_terms(t, stemmer) or ["\u2205"] for t in texts]
        self.sentence_terms: Sequence[frozenset[str]] = [
            frozenset(t + title_terms[chunks[ci].title] + section_terms[chunks[ci].section])
            for t, (ci, _) in zip(tokens, self.sentence_owner)
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
        """Build from the store, or reuse the copy saved for the same store generation."""
        key = hashlib.sha256(f"{_CACHE_VERSION}:{store.settings.describe_store()}:{store.settings.collection}".encode()).hexdigest()[:16]
        generation = store.generation()
        # The generation is in the name and a copy appears whole (renamed into place), so a copy
        # found is the current one; an unreadable one is rebuilt, never trusted.
        path = cache_dir / f"corpus-{key}-{hashlib.sha256(generation.encode()).hexdigest()[:16]}"
        if path.is_dir():
            try:
                return cls._read(path)
            except Exception as exc:
                log.debug("replacing unreadable cache %s: %s", path, exc)
                shutil.rmtree(path, ignore_errors=True)
        corpus = cls(store.all_chunks())
        if corpus.sentence_owner:
            corpus._save(path, stale=f"corpus-{key}-*")
        return corpus

    # -- the saved copy: NumPy arrays and bm25s's own files, no pickle ---------------------------
    #
    # Unpickling 75k Chunk objects and 118k term sets took 1.5-2.0 s of every cold `qa ask`; as
    # arrays the corpus loads in ~0.1 s, and a chunk becomes a `Chunk` when first read.

    def _save(self, path: Path, *, stale: str) -> None:
        chunks = self.chunks
        sources = _Table([c.source for c in chunks])
        titles = _Table([c.title for c in chunks])
        hashes = _Table([c.file_hash for c in chunks])
        roots = _Table([c.root for c in chunks])
        sections = _Table([c.section for c in chunks])
        markups = _Table([c.markup for c in chunks])
        terms = _Table([t for ts in self.sentence_terms for t in ts] + list(self.doc_freq))
        columns: dict[str, Any] = {
            **_strings("id", [c.id for c in chunks]),
            **_strings("text", [c.text for c in chunks]),
            **_strings("sources", sources.values),
            **_strings("titles", titles.values),
            **_strings("hashes", hashes.values),
            **_strings("roots", roots.values),
            **_strings("sections", sections.values),
            **_strings("markups", markups.values),
            "root": roots.index,
            "section": sections.index,
            "markup": markups.index,
            "page": np.array([c.page or 0 for c in chunks], dtype=np.int64),
            **_strings("terms", terms.values),
            "source": sources.index,
            "title": titles.index,
            "file_hash": hashes.index,
            "paragraph": np.array([c.paragraph for c in chunks], dtype=np.int64),
            "start": np.array([c.start for c in chunks], dtype=np.int64),
            "end": np.array([c.end for c in chunks], dtype=np.int64),
            "first_row": np.cumsum([0] + [len(c.sentences) for c in chunks], dtype=np.int64),
            "sentence_start": np.array([s.start for c in chunks for s in c.sentences], dtype=np.int64),
            "sentence_end": np.array([s.end for c in chunks for s in c.sentences], dtype=np.int64),
            "sentence_terms": np.array([terms.ids[t] for ts in self.sentence_terms for t in sorted(ts)], dtype=np.int32),
            "sentence_terms_at": np.cumsum([0] + [len(ts) for ts in self.sentence_terms], dtype=np.int64),
            "doc_freq_term": np.array([terms.ids[t] for t in self.doc_freq], dtype=np.int32),
            "doc_freq": np.array(list(self.doc_freq.values()), dtype=np.int64),
        }
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            tmp.mkdir(parents=True)
            np.savez(tmp / "columns.npz", **columns)
            self.bm25.save(str(tmp / "bm25"), show_progress=False)
            tmp.rename(path)  # whole or not at all; fails if another process saved it first
        except Exception as exc:  # no cache is slower, never wrong
            log.debug("could not write cache %s: %s", path, exc)
            shutil.rmtree(tmp, ignore_errors=True)
            return
        for old in path.parent.glob(stale):  # copies of earlier generations
            if old != path:
                shutil.rmtree(old, ignore_errors=True)
        for old in path.parent.glob("corpus-*.pkl"):  # the pickles of cache version <= 4
            old.unlink(missing_ok=True)

    @classmethod
    def _read(cls, path: Path) -> Corpus:
        import bm25s

        _quiet_bm25s()
        with np.load(path / "columns.npz", allow_pickle=False) as npz:
            c = {name: npz[name] for name in npz.files}
        first_row = c["first_row"]
        n, rows = len(first_row) - 1, int(first_row[-1])
        ids = _unstrings(c, "id")
        terms = _unstrings(c, "terms")
        bm25 = bm25s.BM25.load(str(path / "bm25"), show_progress=False)
        sizes = {"id_at": n + 1, "text_at": n + 1, "paragraph": n, "start": n, "end": n, "source": n, "title": n,
                 "file_hash": n, "sentence_start": rows, "sentence_end": rows, "sentence_terms_at": rows + 1,
                 "root": n, "section": n, "markup": n, "page": n}
        bounds = {"source": "sources_at", "title": "titles_at", "file_hash": "hashes_at", "sentence_terms": "terms_at",
                  "doc_freq_term": "terms_at", "root": "roots_at", "section": "sections_at", "markup": "markups_at"}
        if (
            any(len(c[name]) != size for name, size in sizes.items())
            or any(len(c[name]) and int(c[name].max()) >= len(c[table]) - 1 for name, table in bounds.items())
            or bm25.scores["num_docs"] != rows
        ):
            raise ValueError("inconsistent cache")
        corpus = cls.__new__(cls)
        corpus.chunks = _Chunks(c, ids)
        corpus.position = dict(zip(ids, range(n)))
        counts = np.diff(first_row)
        corpus.sentence_owner = _Owners(first_row, counts)
        corpus.first_sentence = dict(zip(np.flatnonzero(counts).tolist(), first_row[:-1][counts > 0].tolist()))
        corpus.sentence_terms = _TermSets(terms, c["sentence_terms"], c["sentence_terms_at"])
        corpus.doc_freq = dict(zip([terms[i] for i in c["doc_freq_term"].tolist()], c["doc_freq"].tolist()))
        corpus.bm25 = bm25
        corpus.vocab = set(bm25.vocab_dict)
        return corpus

    def term_stats(self) -> TermStats:
        """How many sentences the index holds and how many hold each term: what answerers weigh terms by."""
        return TermStats(len(self.sentence_owner), self.doc_freq)

    def bm25_scores(self, terms: list[str]) -> np.ndarray:
        known = [t for t in terms if t in self.vocab]
        if not known or not self.chunks:
            return np.zeros(len(self.sentence_owner), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(known), dtype=np.float32)


class _Table:
    """Distinct strings in first-seen order, and each input's position among them."""

    def __init__(self, items: list[str]) -> None:
        self.ids: dict[str, int] = {}
        self.index = np.array([self.ids.setdefault(x, len(self.ids)) for x in items], dtype=np.int32)
        self.values = list(self.ids)


def _strings(name: str, values: list[str]) -> dict[str, np.ndarray]:
    """A list of strings as arrays: their UTF-8 bytes run together, and where each starts (in characters)."""
    blob = "".join(values).encode("utf-8")
    return {
        name: np.frombuffer(blob, dtype=np.uint8),
        f"{name}_at": np.cumsum([0] + [len(v) for v in values], dtype=np.int64),
    }


def _unstrings(columns: dict[str, np.ndarray], name: str) -> list[str]:
    text = columns[name].tobytes().decode("utf-8")
    at = columns[f"{name}_at"].tolist()
    return [text[a:b] for a, b in zip(at, at[1:])]


class _Chunks(Sequence[Chunk]):
    """A saved corpus's chunks, each made a `Chunk` when first read (a question reads ~100 of 75k)."""

    def __init__(self, columns: dict[str, np.ndarray], ids: list[str]) -> None:
        self._c = columns
        self._ids = ids
        self._made: list[Chunk | None] = [None] * len(ids)
        self._text: str | None = None
        self._text_at = columns["text_at"]
        self._first_row = columns["first_row"]
        self._tables: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, i: int) -> Chunk: ...

    @overload
    def __getitem__(self, i: slice) -> list[Chunk]: ...

    def __getitem__(self, i: int | slice) -> Chunk | list[Chunk]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        chunk = self._made[i]
        if chunk is None:
            chunk = self._made[i] = self._make(range(len(self))[i])
        return chunk

    def __iter__(self) -> Iterator[Chunk]:
        for i in range(len(self)):
            yield self[i]

    def _table(self, name: str) -> list[str]:
        if name not in self._tables:
            self._tables[name] = _unstrings(self._c, name)
        return self._tables[name]

    def _make(self, i: int) -> Chunk:
        c = self._c
        if self._text is None:
            self._text = c["text"].tobytes().decode("utf-8")
        a, b = int(self._first_row[i]), int(self._first_row[i + 1])
        return Chunk(
            id=self._ids[i],
            source=self._table("sources")[c["source"][i]],
            title=self._table("titles")[c["title"][i]],
            paragraph=int(c["paragraph"][i]),
            start=int(c["start"][i]),
            end=int(c["end"][i]),
            text=self._text[self._text_at[i] : self._text_at[i + 1]],
            sentences=tuple(
                Sentence(s, e) for s, e in zip(c["sentence_start"][a:b].tolist(), c["sentence_end"][a:b].tolist())
            ),
            file_hash=self._table("hashes")[c["file_hash"][i]],
            page=int(c["page"][i]) or None,
            section=self._table("sections")[c["section"][i]],
            root=self._table("roots")[c["root"][i]],
            markup=self._table("markups")[c["markup"][i]],
        )


class _Owners(Sequence[tuple[int, int]]):
    """`(chunk index, sentence index)` of each sentence row, from where each chunk's rows start."""

    def __init__(self, first_row: np.ndarray, counts: np.ndarray) -> None:
        self._chunk = np.repeat(np.arange(len(counts)), counts)
        self._first_row = first_row

    def __len__(self) -> int:
        return len(self._chunk)

    @overload
    def __getitem__(self, row: int) -> tuple[int, int]: ...

    @overload
    def __getitem__(self, row: slice) -> list[tuple[int, int]]: ...

    def __getitem__(self, row: int | slice) -> tuple[int, int] | list[tuple[int, int]]:
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        row = range(len(self))[row]
        ci = int(self._chunk[row])
        return ci, row - int(self._first_row[ci])


class _TermSets(Sequence[frozenset[str]]):
    """Each sentence's terms (its own and its title's), as a frozenset made on access."""

    def __init__(self, terms: list[str], ids: np.ndarray, at: np.ndarray) -> None:
        self._terms = terms
        self._ids = ids
        self._at = at

    def __len__(self) -> int:
        return len(self._at) - 1

    @overload
    def __getitem__(self, row: int) -> frozenset[str]: ...

    @overload
    def __getitem__(self, row: slice) -> list[frozenset[str]]: ...

    def __getitem__(self, row: int | slice) -> frozenset[str] | list[frozenset[str]]:
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        row = range(len(self))[row]
        terms = self._terms
        return frozenset(terms[t] for t in self._ids[self._at[row] : self._at[row + 1]].tolist())


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

    def search(self, query: str, k: int, *, mode: str = "hybrid") -> Passages:
        """`retrieve`, as the self-contained passages an answerer is given."""
        started = time.perf_counter()
        retrieval = self.retrieve(query, k, mode=mode)
        return self.passages(retrieval, started=started)

    def passages(self, retrieval: Retrieval, *, started: float | None = None) -> Passages:
        """`retrieval` with each chunk's sentences, their scores and terms, and the corpus's term statistics."""
        from qa.passages import Passage, Passages, ScoredSentence

        corpus = self.corpus
        items = []
        for chunk, score in zip(retrieval.chunks, retrieval.chunk_scores):
            ci = corpus.position.get(chunk.id)
            sentences = []
            for si, text in enumerate(chunk.sentence_texts()):
                s = retrieval.sentences.get((ci, si)) if ci is not None else None
                sentences.append(
                    ScoredSentence(
                        si, text, frozenset(lexical_terms(text, self.stemmer)),
                        dense=s.dense if s else 0.0, bm25=s.bm25 if s else 0.0, fused=s.rrf if s else 0.0,
                    )
                )
            items.append(Passage(chunk, score, tuple(sentences)))
        elapsed = round((time.perf_counter() - started) * 1000, 2) if started is not None else 0.0
        return Passages(retrieval.query, tuple(items), corpus.term_stats(), retrieval.bm25_max, retrieve_ms=elapsed)
