"""`MemoryStore`: the `Store` protocol in plain Python and NumPy, for tests and throwaway engines.

A real implementation, not a stub: exact cosine search, the same records, generations and writer
mark as `ChromaStore`, checked by the same contract tests (`tests/contract/`). Nothing persists:
`Engine(settings, store=MemoryStore(settings))` runs the whole engine without Chroma.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import EmbeddingMismatchError
from qa.store import (
    Record,
    SentenceHit,
    StoreState,
    WriterMark,
    check_model,
    chunk_from_record,
    chunk_metadata,
    document_entries,
    embedding_model,
)
from qa.types import Chunk

if TYPE_CHECKING:
    from qa.settings import Settings

__all__ = ["MemoryStore"]


class MemoryStore:
    """Chunk records and sentence vectors in dictionaries; safe to share between threads."""

    def __init__(self, settings: Settings, *, model: tuple[str, int | None] | None = None) -> None:
        """`model`: the embedding model recorded as having written it (checked against the settings', as Chroma's is)."""
        self.settings = settings
        self._lock = threading.RLock()
        self._chunks: dict[str, tuple[str, dict[str, Any], np.ndarray]] = {}  # id -> (text, metadata, vector)
        self._sentences: dict[str, tuple[str, np.ndarray]] = {}  # "chunk_id:index" -> (chunk_id, vector)
        self._meta: dict[str, Any] = {"generation": uuid.uuid4().hex}
        if model is not None:
            self._meta.update(embed_model=model[0], embed_dim=model[1])
            check_model(settings, self._meta, where="memory")
        self._marking = False
        self._writer: WriterMark | None = None
        self.seen_generation: str | None = str(self._meta["generation"])

    # -- state -------------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return True

    def count(self) -> int:
        return len(self._chunks)

    def state(self) -> StoreState:
        with self._lock:
            return StoreState(str(self._meta["generation"]), WriterMark.decode(self._meta.get("writer")))

    def generation(self) -> str:
        return self.state().generation

    def current_generation(self) -> tuple[str, bool]:
        generation = self.generation()
        return generation, generation != self.seen_generation

    def warm_up(self) -> None:
        return None

    def begin_write(self) -> None:
        self._marking = True

    def end_write(self) -> None:
        self._marking = False
        if self._writer is not None:
            self._writer = None
            self._bump()

    def _bump(self) -> None:
        with self._lock:
            if self._marking:
                self._writer = WriterMark.here()
            generation = uuid.uuid4().hex
            model, dim = embedding_model(self.settings)
            self._meta.update(generation=generation, embed_model=model, writer=self._writer.encode() if self._writer else "")
            if dim is not None:
                self._meta.setdefault("embed_dim", dim)
            self.seen_generation = generation

    # -- writes ------------------------------------------------------------------------------

    def add(self, chunks: Sequence[Chunk], sentence_vectors: Sequence[np.ndarray], *, root: str) -> None:
        if not chunks:
            return
        indexed_at = round(time.time(), 3)
        rows = [np.asarray(v, dtype=np.float32) for v in sentence_vectors]
        dim = int(rows[0].shape[1])
        recorded = self._meta.get("embed_dim")
        if recorded is not None and int(recorded) != dim:
            raise EmbeddingMismatchError(
                f"The index in memory holds {int(recorded)}-dimension vectors, but the embedder gives {dim}. "
                "Set QA_EMBED_MODEL back, or re-index with `qa ingest DIR --rebuild`."
            )
        with self._lock:
            self._meta["embed_dim"] = dim
            self._bump()
            for chunk, vectors in zip(chunks, rows):
                for i in range(len(chunk.sentences)):
                    self._sentences[f"{chunk.id}:{i}"] = (chunk.id, vectors[i])
            for chunk, vectors in zip(chunks, rows):
                mean = vectors.mean(axis=0)
                mean /= max(float(np.linalg.norm(mean)), 1e-12)
                self._chunks[chunk.id] = (chunk.text, {**chunk_metadata(chunk, root), "indexed_at": indexed_at}, mean)
            self._bump()

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        doomed = set(chunk_ids)
        with self._lock:
            self._bump()
            for sid in [s for s, (owner, _) in self._sentences.items() if owner in doomed]:
                del self._sentences[sid]
            for cid in doomed:
                self._chunks.pop(cid, None)
            self._bump()

    def delete_sentences(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        with self._lock:
            self._bump()
            for sid in ids:
                self._sentences.pop(sid, None)
            self._bump()

    def drop(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._sentences.clear()
            self._meta = {"generation": self._meta["generation"]}
            self._bump()

    # -- reads -------------------------------------------------------------------------------

    def all_chunks(self) -> list[Chunk]:
        with self._lock:
            items = list(self._chunks.items())
        out = [chunk_from_record(cid, text, meta) for cid, (text, meta, _) in items]
        out.sort(key=lambda c: (c.source, c.start))
        return out

    def dense_sentences(self, vector: np.ndarray, k: int, *, available: int | None = None) -> list[SentenceHit]:
        with self._lock:
            items = list(self._sentences.items())
        if not items or k <= 0:
            return []
        matrix = np.stack([v for _, (_, v) in items])
        query = np.asarray(vector, dtype=np.float32)
        norms = np.maximum(np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-12), 1e-12)
        similarity = (matrix @ query) / norms
        order = np.argsort(-similarity, kind="stable")[:k]
        hits = []
        for row in order:
            chunk_id, _, index = items[int(row)][0].rpartition(":")
            hits.append(SentenceHit(chunk_id, int(index), float(similarity[int(row)])))
        return hits

    def sentence_vectors(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        with self._lock:
            found = {(c, i): self._sentences.get(f"{c}:{i}") for c, i in keys}
        return {key: value[1] for key, value in found.items() if value is not None}

    def chunk_ids_by_source(self, root: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        with self._lock:
            for cid, (_, meta, _) in self._chunks.items():
                if meta["root"] == root:
                    out.setdefault(str(meta["source"]), {})[cid] = str(meta["file_hash"])
        return out

    def chunk_ids_of_source(self, source: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        with self._lock:
            for cid, (_, meta, _) in self._chunks.items():
                if meta["source"] == source:
                    out.setdefault(str(meta["root"]), []).append(cid)
        return out

    def damaged_chunks(self, chunks: Sequence[Chunk]) -> set[str]:
        bad = self.unreadable("chunks", [c.id for c in chunks])
        sentence_ids = [f"{c.id}:{i}" for c in chunks for i in range(len(c.sentences))]
        return bad | {sid.rpartition(":")[0] for sid in self.unreadable("sentences", sentence_ids)}

    def unreadable(self, kind: str, ids: Sequence[str]) -> set[str]:
        with self._lock:
            if kind == "chunks":
                return {i for i in ids if i not in self._chunks or not self._chunks[i][0]}
            return {i for i in ids if i not in self._sentences}

    def records(self, kind: str) -> list[Record]:
        with self._lock:
            if kind == "chunks":
                return [Record(cid, str(meta["root"]), len(chunk_from_record(cid, text, meta).sentences))
                        for cid, (text, meta, _) in self._chunks.items()]
            return [Record(sid) for sid in self._sentences]

    def document_records(self) -> list[dict[str, Any]]:
        with self._lock:
            metas = [meta for _, meta, _ in self._chunks.values()]
        return document_entries(metas)

    def collection_names(self) -> list[str]:
        return [self.settings.collection] if self._chunks else []
