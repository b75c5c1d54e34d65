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
import os
import re
import shlex
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qa.errors import ConfigError, StoreBusyError, StoreError
from qa.types import Chunk, Sentence

if TYPE_CHECKING:
    from qa.settings import Settings

log = logging.getLogger(__name__)
_BATCH = 1000
_VERIFY_BATCH = 2000  # ids read back per call when checking vectors


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


def writer_lock_path(settings: Settings) -> Path:
    """The lock file every writer of this store takes: beside an embedded store, or per server on this machine."""
    if settings.chroma_host:
        # Writers of one server may use different QA_DATA_DIRs: the lock is keyed by the server, in a
        # folder every local user can reach. It serialises writers on this machine only.
        name = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{settings.chroma_host.lower()}-{settings.chroma_port}")
        return Path(tempfile.gettempdir()) / "qa-writer-locks" / f"chroma-{name}.lock"
    return settings.data_dir / "chroma.writer.lock"


class WriterLock:
    """One writer at a time per store, across threads and processes (Chroma's embedded client is not process-safe).

    Held for a whole write: ingest, upload, re-index, repair. Readers never take it. A second writer
    waits up to `QA_WRITE_LOCK_TIMEOUT` seconds, then fails naming the holder, which each writer
    records (pid, host, command, start) in a side file next to the lock. Re-entrant in one thread.
    """

    def __init__(self, settings: Settings) -> None:
        from filelock import FileLock

        self.settings = settings
        self.path = writer_lock_path(settings)
        self.holder_path = self.path.with_name(self.path.name + ".holder")
        # thread_local: each thread has its own descriptor, so two threads of one process exclude
        # each other too; one thread may re-enter (the chat page's upload holds it around ingest).
        self._lock = FileLock(str(self.path), mode=0o666, thread_local=True)
        self._depth = threading.local()

    @contextlib.contextmanager
    def hold(self, *, command: str | None = None) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self._acquire()
            self._write_holder(command)
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                self.holder_path.unlink(missing_ok=True)  # before releasing: never delete the next holder's note
                self._lock.release()

    def _acquire(self) -> None:
        from filelock import Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.settings.chroma_host:
                with contextlib.suppress(OSError):
                    self.path.parent.chmod(0o1777)  # shared by every local user, like /tmp
            self._lock.acquire(timeout=self.settings.write_lock_timeout)
        except Timeout:
            raise StoreBusyError(
                f"Another writer is updating {self.settings.describe_store()}: {self.holder()}. "
                f"Gave up after {self.settings.write_lock_timeout:g} s (QA_WRITE_LOCK_TIMEOUT); retry when it has finished."
            ) from None
        except PermissionError as exc:
            raise StoreError(
                f"Can't create the writer lock {self.path} ({exc.strerror}); fix its folder's permissions or set QA_DATA_DIR."
            ) from exc

    def _write_holder(self, command: str | None) -> None:
        argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": (command or shlex.join(argv))[:200],
            "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        }
        try:
            tmp = self.holder_path.with_name(f"{self.holder_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(note), encoding="utf-8")
            tmp.replace(self.holder_path)
        except OSError as exc:  # the note only helps the next writer's message
            log.debug("could not write %s: %s", self.holder_path, exc)

    def holder(self) -> str:
        """Who holds the lock, as one phrase (from the side file the holder wrote)."""
        try:
            note = json.loads(self.holder_path.read_text(encoding="utf-8"))
            command = " ".join(str(note["command"]).split())
            return f"pid {int(note['pid'])} on {note['host']} running `{command}` since {note['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that left no note of who it is"


def _forget_cached_system(path: Path) -> None:
    """Make the next `PersistentClient(path)` a new one, reading the store from disk.

    Chroma shares one client "system" per path within a process, with its vector index loaded in
    memory. Clients already made keep theirs (a question in flight finishes on it); new ones load
    what other processes wrote since.
    """
    from chromadb.api.shared_system_client import SharedSystemClient

    with SharedSystemClient._refcount_lock:
        SharedSystemClient._identifier_to_system.pop(str(path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(path), None)


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

    def __init__(self, settings: Settings, *, read_only: bool = False, fresh: bool = False) -> None:
        self.settings = settings
        self._vector_stores: dict[str, Any] = {}  # llama-index's, by collection name: for writes only
        self._warming: threading.Thread | None = None
        self.seen_generation: str | None = None  # as opened or last written by this process
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
                elif fresh:
                    _forget_cached_system(settings.store_path)
                settings.store_path.mkdir(parents=True, exist_ok=True)
                try:
                    self.client = chromadb.PersistentClient(path=str(settings.store_path), settings=chroma_settings)
                except Exception:
                    _forget_cached_system(settings.store_path)  # else the half-started client is reused next time
                    raise
            self.chunks = self._collection("chunks")
            self.sentences = self._collection("sentences")
        self.seen_generation = self.generation()

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
        generation = uuid.uuid4().hex
        self.chunks.modify(metadata={"generation": generation})
        self.seen_generation = generation

    def current_generation(self) -> tuple[str, bool]:
        """The generation now, and whether another process changed it since this client opened the store or wrote.

        An embedded client keeps its vector index in memory: after another process's ingest it
        misses the new vectors ("Error finding id") until it is opened again.
        """
        generation = self.generation()
        return generation, self.exists and generation != self.seen_generation

    def unreadable(self, kind: str, ids: Sequence[str], *, texts: bool = True) -> set[str]:
        """Those of `ids` in the `chunks` or `sentences` collection whose record, vector or (with `texts`) text can't be read back."""
        collection = self.chunks if kind == "chunks" else self.sentences
        bad: set[str] = set()
        if not ids or collection is None:
            return set(ids)

        def readable(batch: list[str]) -> set[str]:
            got = collection.get(ids=batch, include=["embeddings", "documents"] if texts else ["embeddings"])
            found = got["documents"] if texts else [True] * len(got["ids"])
            return {str(i) for i, e, d in zip(got["ids"], got["embeddings"], found) if e is not None and len(e) and d}

        for at in range(0, len(ids), _VERIFY_BATCH):
            batch = list(ids[at : at + _VERIFY_BATCH])
            try:
                bad |= set(batch) - readable(batch)
                continue
            except Exception as exc:  # one damaged vector fails the whole batch: find which, one by one
                log.debug("reading back %d %s failed (%s); checking them one by one", len(batch), kind, exc)
            for one in batch:
                try:
                    bad |= {one} - readable([one])
                except Exception:
                    bad.add(one)
        return bad

    def damaged_chunks(self, chunks: Sequence[Chunk]) -> set[str]:
        """Ids of `chunks` whose chunk record or any sentence vector is missing or unreadable.

        Vectors only (texts are `qa check`'s): ~0.05 s per 1,000 chunks of 3 sentences, so an unchanged re-ingest
        stays a small share of the first.
        """
        with chroma_errors(self.settings):
            bad = self.unreadable("chunks", [c.id for c in chunks], texts=False)
            sentence_ids = [f"{c.id}:{i}" for c in chunks for i in range(len(c.sentences))]
            bad |= {sid.rpartition(":")[0] for sid in self.unreadable("sentences", sentence_ids, texts=False)}
        return bad

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


def probe_unlocked(settings: Settings) -> None:
    """Fail within QA_LOCK_WAIT seconds with the store's one-line "locked" error, not after Chroma's 1000 s.

    Chroma opens `chroma.sqlite3` with a fixed 1000 s busy timeout and writes to it as it starts, so
    a store another process keeps locked (an open transaction in a database browser, a suspended
    writer) would leave any command waiting silently for 16 minutes. Taking and at once releasing
    the exclusive lock Chroma needs, with a short timeout, finds that out first. This must run before
    Chroma opens the file in this process: closing this connection drops the process's POSIX locks
    on the file, which then must not include any of Chroma's.
    """
    path = settings.store_path / "chroma.sqlite3"
    if settings.chroma_host or not path.is_file():
        return
    import sqlite3

    with chroma_errors(settings):  # "database is locked" -> "... is locked by another process; retry in a moment."
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=settings.lock_wait, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")  # writes nothing; a read-only store passes and Chroma reports it
            conn.execute("ROLLBACK")
        finally:
            conn.close()
