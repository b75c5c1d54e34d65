"""Chroma: an embedded PersistentClient or a `chroma run` server; writes go through llama-index.

Two collections per corpus: `<name>-sentences` holds one vector per sentence (what dense search
ranks) and `<name>-chunks` holds the chunks with their provenance (what answers cite). A chunk is
written after its sentences, so a chunk record means its file's work for that chunk is complete.

Writes (`add`, `delete`) go through llama-index's `ChromaVectorStore`, built on first write. Reads
(`dense_sentences`, `sentence_vectors`, `all_chunks`, ...) go straight to the same Chroma
collections: importing llama-index costs 1.3-1.9 s, which `qa ask` would otherwise pay on every
start (issue 8 keeps a cold `qa ask` under 3 s). The direct query is the one `ChromaVectorStore`
makes, so hits, order and similarities are the same (tests/test_store_reads.py checks it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import ConfigError, StoreError
from qa.types import Chunk, Sentence

if TYPE_CHECKING:
    from qa.settings import Settings

log = logging.getLogger(__name__)
_BATCH = 1000


@contextlib.contextmanager
def chroma_errors(settings: Settings) -> Iterator[None]:
    """Turn Chroma's and the network's exceptions into one clear StoreError."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:  # chromadb raises many unrelated types; all mean "store unusable"
        name = type(exc).__name__
        text = str(exc).splitlines()[0] if str(exc) else name
        if settings.chroma_host:
            raise StoreError(
                f"Cannot reach the Chroma server at http://{settings.chroma_host}:{settings.chroma_port} ({name}). "
                f"Start it with `chroma run --path DIR --host {settings.chroma_host} --port {settings.chroma_port}` "
                "or unset QA_CHROMA_HOST."
            ) from None
        if "readonly" in text.lower() or "read-only" in text.lower() or isinstance(exc, PermissionError):
            raise StoreError(f"The store at {settings.store_path} is read-only; fix its permissions or set QA_DATA_DIR.") from None
        if "locked" in text.lower():
            raise StoreError(f"The store at {settings.store_path} is locked by another process; retry in a moment.") from None
        raise StoreError(f"The store at {settings.store_path} failed: {text} ({name}).") from None


@dataclass(frozen=True)
class SentenceHit:
    chunk_id: str
    index: int
    similarity: float


def chunk_metadata(chunk: Chunk, root: str) -> dict[str, Any]:
    return {
        "source": chunk.source,
        "title": chunk.title,
        "paragraph": chunk.paragraph,
        "start": chunk.start,
        "end": chunk.end,
        "root": root,
        "file_hash": chunk.file_hash,
        "sentences": json.dumps([[s.start, s.end] for s in chunk.sentences]),
        "page": chunk.page or 0,  # Chroma metadata has no None: 0 = no page
        "section": chunk.section,
        "markup": chunk.markup,
    }


def chunk_from_record(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        id=chunk_id,
        source=str(meta["source"]),
        title=str(meta.get("title", "")),
        paragraph=int(meta["paragraph"]),
        start=int(meta["start"]),
        end=int(meta["end"]),
        text=text,
        sentences=tuple(Sentence(int(s), int(e)) for s, e in json.loads(str(meta["sentences"]))),
        file_hash=str(meta.get("file_hash", "")),
        page=int(meta.get("page") or 0) or None,
        section=str(meta.get("section", "")),
        root=str(meta.get("root", "")),
        markup=str(meta.get("markup", "")),
    )


class Store:
    """The corpus in Chroma: chunk records and sentence vectors, written through llama-index, read directly."""

    def __init__(self, settings: Settings, *, read_only: bool = False) -> None:
        self.settings = settings
        self._vector_stores: dict[str, Any] = {}  # llama-index's, by collection name: for writes only
        self._warming: threading.Thread | None = None
        with chroma_errors(settings):
            import chromadb

            chroma_settings = chromadb.Settings(anonymized_telemetry=False, allow_reset=False)
            if settings.chroma_host:
                self.client: Any = chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
                self.client.heartbeat()
            else:
                if read_only and not (settings.store_path / "chroma.sqlite3").exists():
                    self.client = None
                    self.chunks = self.sentences = None
                    return
                if not settings.store_path.exists():
                    # Chroma caches one client per path in-process; a folder deleted under a running
                    # process would otherwise be served from that stale cache ("no such table").
                    from chromadb.api.client import SharedSystemClient

                    SharedSystemClient.clear_system_cache()
                settings.store_path.mkdir(parents=True, exist_ok=True)
                self.client = chromadb.PersistentClient(path=str(settings.store_path), settings=chroma_settings)
            self.chunks = self._collection("chunks")
            self.sentences = self._collection("sentences")

    def _vector_store(self, collection: Any) -> Any:
        """llama-index's `ChromaVectorStore` over `collection`, built on first write (its import costs seconds)."""
        if collection.name not in self._vector_stores:
            from llama_index.vector_stores.chroma import ChromaVectorStore

            self._vector_stores[collection.name] = ChromaVectorStore(chroma_collection=collection)
        return self._vector_stores[collection.name]

    def warm_up(self) -> None:
        """Have Chroma load the sentence index in the background, once per store.

        An embedded store reads its vector index on the first query (~0.6 s at 75k chunks), in Rust
        without holding the GIL, so a throwaway query started here overlaps that with whatever the
        caller does meanwhile (loading the corpus, embedding the question); `dense_sentences` waits
        for it. A server keeps its index loaded, so there is nothing to warm.
        """
        if not self.exists or self.settings.chroma_host or self._warming is not None:
            return
        sentences: Any = self.sentences

        def query_one() -> None:
            try:
                first = sentences.get(limit=1, include=["embeddings"])
                if len(first["ids"]):
                    sentences.query(query_embeddings=[list(first["embeddings"][0])], n_results=1, include=[])
            except Exception as exc:  # best effort: the real query reports any problem
                log.debug("warming the sentence index failed: %s", exc)

        # Not a daemon: a process that exits before its first query waits for it, rather than
        # tearing the interpreter down under a thread inside Chroma.
        self._warming = threading.Thread(target=query_one, name="qa-warm-up")
        self._warming.start()

    @property
    def chunk_store(self) -> Any:
        return self._vector_store(self.chunks)

    @property
    def sentence_store(self) -> Any:
        return self._vector_store(self.sentences)

    def _collection(self, kind: str) -> Any:
        name = f"{self.settings.collection}-{kind}"
        try:
            return self.client.get_or_create_collection(
                name=name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        except ValueError as exc:
            raise ConfigError(f"Bad QA_COLLECTION {self.settings.collection!r}: {exc}") from None

    @property
    def exists(self) -> bool:
        return self.chunks is not None

    def count(self) -> int:
        if not self.exists:
            return 0
        with chroma_errors(self.settings):
            return int(self.chunks.count())

    def generation(self) -> str:
        """Changes whenever the corpus changes; keys caches built from it."""
        if not self.exists:
            return "empty"
        with chroma_errors(self.settings):
            # add() and delete() bump the generation before and after writing, so a writer killed
            # midway still leaves a new value; no count() needed (it costs ~10 ms at 75k chunks).
            meta = self.client.get_collection(self.chunks.name).metadata or {}
            return str(meta.get("generation", "none"))

    def _bump_generation(self) -> None:
        self.chunks.modify(metadata={"generation": uuid.uuid4().hex})

    def chunk_ids_by_source(self, root: str) -> dict[str, dict[str, str]]:
        """`{source: {chunk_id: file_hash}}` for chunks ingested from `root`."""
        out: dict[str, dict[str, str]] = {}
        with chroma_errors(self.settings):
            offset = 0
            while True:
                got = self.chunks.get(where={"root": root}, include=["metadatas"], limit=10_000, offset=offset)
                for cid, meta in zip(got["ids"], got["metadatas"]):
                    out.setdefault(str(meta["source"]), {})[cid] = str(meta.get("file_hash", ""))
                if len(got["ids"]) < 10_000:
                    return out
                offset += 10_000

    def add(self, chunks: Sequence[Chunk], sentence_vectors: Sequence[np.ndarray], *, root: str) -> None:
        """Write sentence vectors, then the chunk records (chunk vector = mean of its sentences)."""
        from llama_index.core.schema import TextNode

        sentence_nodes: list[TextNode] = []
        chunk_nodes: list[TextNode] = []
        indexed_at = round(time.time(), 3)  # when the document's chunks were written, for `qa docs list` and the API
        for chunk, vectors in zip(chunks, sentence_vectors):
            for i, (sentence, text) in enumerate(zip(chunk.sentences, chunk.sentence_texts())):
                sentence_nodes.append(
                    TextNode(
                        id_=f"{chunk.id}:{i}",
                        text=text,
                        embedding=vectors[i].tolist(),
                        metadata={"chunk_id": chunk.id, "index": i, "source": chunk.source, "root": root,
                                  "start": sentence.start, "end": sentence.end},
                    )
                )
            mean = vectors.mean(axis=0)
            mean /= max(float(np.linalg.norm(mean)), 1e-12)
            chunk_nodes.append(
                TextNode(id_=chunk.id, text=chunk.text, embedding=mean.tolist(),
                         metadata={**chunk_metadata(chunk, root), "indexed_at": indexed_at})
            )
        with chroma_errors(self.settings):
            self._bump_generation()
            for i in range(0, len(sentence_nodes), _BATCH):
                self._upsert(self.sentence_store, self.sentences, sentence_nodes[i : i + _BATCH])
            for i in range(0, len(chunk_nodes), _BATCH):
                self._upsert(self.chunk_store, self.chunks, chunk_nodes[i : i + _BATCH])
            self._bump_generation()

    @staticmethod
    def _upsert(vector_store: Any, collection: Any, nodes: list[Any]) -> None:
        # A re-run after a killed ingest may meet ids already written: replace them, never duplicate.
        existing = set(collection.get(ids=[n.node_id for n in nodes], include=[])["ids"])
        if existing:
            collection.delete(ids=list(existing))
        vector_store.add(nodes)

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        with chroma_errors(self.settings):
            self._bump_generation()
            ids = list(chunk_ids)
            for i in range(0, len(ids), _BATCH):
                batch = ids[i : i + _BATCH]
                self.sentences.delete(where={"chunk_id": {"$in": batch}})
                self.chunk_store.delete_nodes(node_ids=batch)
            self._bump_generation()

    def all_chunks(self) -> list[Chunk]:
        if not self.exists:
            return []
        out: list[Chunk] = []
        with chroma_errors(self.settings):
            offset = 0
            while True:
                got = self.chunks.get(include=["documents", "metadatas"], limit=10_000, offset=offset)
                out.extend(chunk_from_record(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]))
                if len(got["ids"]) < 10_000:
                    break
                offset += 10_000
        out.sort(key=lambda c: (c.source, c.start))
        return out

    def dense_sentences(self, vector: np.ndarray, k: int, *, available: int | None = None) -> list[SentenceHit]:
        """Nearest sentences by cosine similarity: the query `ChromaVectorStore.query` makes, minus its import."""
        if not self.exists:
            return []
        warming = self._warming
        if warming is not None:
            warming.join()  # one index load, not two racing
        with chroma_errors(self.settings):
            n = available if available is not None else self.sentences.count()
            if n == 0:
                return []
            sentences: Any = self.sentences
            result = sentences.query(query_embeddings=[vector.tolist()], n_results=min(k, n), include=["metadatas", "distances"])
        hits = []
        for meta, distance in zip(result["metadatas"][0], result["distances"][0]):
            # The collection's space is cosine: distance = 1 - cos.
            hits.append(SentenceHit(str(meta["chunk_id"]), int(meta["index"]), 1.0 - float(distance)))
        return hits

    def sentence_vectors(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        """Stored vectors of the given `(chunk_id, sentence_index)` sentences, fetched by id."""
        if not keys or not self.exists:
            return {}
        with chroma_errors(self.settings):
            got = self.sentences.get(ids=[f"{c}:{i}" for c, i in keys], include=["embeddings"])
        out = {}
        for sid, e in zip(got["ids"], got["embeddings"]):
            chunk_id, _, index = str(sid).rpartition(":")
            out[(chunk_id, int(index))] = np.asarray(e, dtype=np.float32)
        return out

    # -- documents and collections (`qa docs`, `qa collections`, the HTTP API) -------------------

    def collection_names(self) -> list[str]:
        """Every corpus in this Chroma (embedded folder or server): names with both `-chunks` and `-sentences`."""
        if self.client is None:
            return []
        with chroma_errors(self.settings):
            names = {str(getattr(c, "name", c)) for c in self.client.list_collections()}
        return sorted(n[: -len("-chunks")] for n in names if n.endswith("-chunks") and n[: -len("-chunks")] + "-sentences" in names)

    def document_records(self) -> list[dict[str, Any]]:
        """One entry per indexed document: source, title, root folder, chunk count, when it was indexed (epoch s)."""
        if not self.exists:
            return []
        docs: dict[tuple[str, str], dict[str, Any]] = {}
        with chroma_errors(self.settings):
            offset = 0
            while True:
                got = self.chunks.get(include=["metadatas"], limit=10_000, offset=offset)
                for meta in got["metadatas"]:
                    key = (str(meta["source"]), str(meta.get("root", "")))
                    entry = docs.setdefault(
                        key, {"source": key[0], "title": str(meta.get("title", "")), "root": key[1], "chunks": 0, "indexed_at": None}
                    )
                    entry["chunks"] += 1
                    at = meta.get("indexed_at")
                    if isinstance(at, (int, float)) and (entry["indexed_at"] is None or at > entry["indexed_at"]):
                        entry["indexed_at"] = float(at)
                if len(got["ids"]) < 10_000:
                    break
                offset += 10_000
        return sorted(docs.values(), key=lambda d: (d["source"], d["root"]))

    def chunk_ids_of_source(self, source: str) -> dict[str, list[str]]:
        """`{root: [chunk ids]}` of the document `source` (the same name may come from several folders)."""
        out: dict[str, list[str]] = {}
        if not self.exists:
            return out
        with chroma_errors(self.settings):
            got = self.chunks.get(where={"source": source}, include=["metadatas"])
        for cid, meta in zip(got["ids"], got["metadatas"]):
            out.setdefault(str(meta.get("root", "")), []).append(str(cid))
        return out
