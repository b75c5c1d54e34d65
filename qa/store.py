"""The corpus store: a small `Store` protocol and its Chroma implementation, `ChromaStore`.

Two collections per corpus: `<name>-sentences` holds one vector per sentence (what dense search
ranks) and `<name>-chunks` holds the chunks with their provenance and text (what answers cite). A
chunk is written after its sentences, so a chunk record means its file's work for that chunk is
complete.

Chroma is reached one way, through chromadb's own client, for reads and writes alike. A record
carries only what the reads need: a sentence its vector and `chunk_id` (its text is a slice of its
chunk's), a chunk its vector, text and `chunk_metadata`. Indexes written before this layout (through
llama-index, with its `_node_content` copy of every record) read the same: every field the reads
use was written then too.

The `<name>-chunks` collection's metadata holds the store's state: `generation` (changes with every
write; keys caches built from the corpus), `writer` (set while an ingest is writing, so readers in
other processes keep their last complete corpus) and the embedding model that wrote the vectors
(`embed_model`, `embed_dim`), checked on open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qa.errors import ConfigError, EmbeddingMismatchError, StoreBusyError, StoreError
from qa.startup import skip_override_checks
from qa.types import Chunk, Sentence

if TYPE_CHECKING:
    from qa.settings import Settings

log = logging.getLogger(__name__)
_BATCH = 1000  # records per Chroma call
_VERIFY_BATCH = 2000  # ids read back per call when checking vectors
_PAGE = 10_000  # records per page when reading a whole collection
# A writer on another machine (a shared Chroma server) can't be probed through its lock file: its
# marker counts as live while its heartbeat, renewed at every write batch, is younger than this.
WRITER_STALE_S = 600.0
_KINDS = ("chunks", "sentences")

# Embedding models by `QA_EMBED_MODEL`: the name recorded in the index, and the vector size.
# `minilm` and `minilm-torch` are one model through two runtimes (cosine >= 0.9999): interchangeable.
_MODELS: dict[str, tuple[str, int | None]] = {
    "minilm": ("all-MiniLM-L6-v2", 384),
    "minilm-torch": ("all-MiniLM-L6-v2", 384),
}


skip_override_checks()  # before chromadb is imported: see qa/startup.py


def embedding_model(settings: Settings) -> tuple[str, int | None]:
    """The embedding model these settings embed with, as recorded in an index: name and dimension (None if unknown).

    An OpenAI-compatible server's dimension is whatever it returns: recorded from the first vectors written.
    """
    if settings.embed_model == "openai":
        return f"openai:{settings.openai_embed_model}", None
    return _MODELS.get(settings.embed_model, (settings.embed_model, None))


def store_error_types() -> tuple[type[BaseException], ...]:
    """What Chroma and its transports raise when the store, not our code, fails."""
    from chromadb.errors import ChromaError

    types: list[type[BaseException]] = [ChromaError, sqlite3.Error, OSError]
    with contextlib.suppress(ImportError):
        import httpx

        types.append(httpx.TransportError)  # the HttpClient's transport: refused, reset, timed out
    with contextlib.suppress(ImportError):
        import requests

        types.append(requests.RequestException)
    return tuple(types)


def _unwritable(path: Path) -> bool:
    """Whether the embedded store at `path` (or a file in it) can't be written by this process."""
    if not path.exists():
        existing = next((p for p in path.parents if p.exists()), None)
        return existing is not None and not os.access(existing, os.W_OK)
    files = [path, *(p for p in path.glob("**/*") if p.is_file())]
    return any(not os.access(p, os.W_OK) for p in files[:1000])


def store_error(settings: Settings, exc: BaseException) -> StoreError:
    """The one-line StoreError for a failure of the store (`exc` is Chroma's, SQLite's, the OS's or the network's)."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else name
    from chromadb.errors import ChromaError

    if settings.chroma_host and isinstance(exc, ChromaError):  # the server answered, with an error
        return StoreError(
            f"The Chroma server at http://{settings.chroma_host}:{settings.chroma_port} failed: {text} ({name}). "
            "Run `qa check` to see what is damaged."
        )
    if settings.chroma_host and not isinstance(exc, sqlite3.Error):  # the network: refused, reset, timed out
        return StoreError(
            f"Cannot reach the Chroma server at http://{settings.chroma_host}:{settings.chroma_port} ({name}). "
            f"Start it with `chroma run --path DIR --host {settings.chroma_host} --port {settings.chroma_port}` "
            "or unset QA_CHROMA_HOST."
        )
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(f"The store at {settings.store_path} is locked by another process; retry in a moment.")
    # Chroma reports a read-only file as an internal error of its own: look at the files, not the message.
    if isinstance(exc, PermissionError) or _unwritable(settings.store_path):
        return StoreError(f"The store at {settings.store_path} is read-only; fix its permissions or set QA_DATA_DIR.")
    return StoreError(f"The store at {settings.store_path} failed: {text} ({name}). Run `qa check` to see what is damaged.")


@contextlib.contextmanager
def chroma_errors(settings: Settings) -> Iterator[None]:
    """Turn the store's failures (by type: Chroma's, SQLite's, the OS's, the network's) into one StoreError.

    Anything else, our own bugs included (TypeError, KeyError, ...), passes through untranslated.
    """
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        types = store_error_types()
        # chromadb re-raises a refused connection as a plain ValueError, raised while handling httpx's error.
        inner = exc.__cause__ or exc.__context__
        if isinstance(exc, types) or (isinstance(exc, ValueError) and isinstance(inner, types)):
            raise store_error(settings, exc) from exc
        raise


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
        except Timeout as exc:
            raise StoreBusyError(
                f"Another writer is updating {self.settings.describe_store()}: {self.holder()}. "
                f"Gave up after {self.settings.write_lock_timeout:g} s (QA_WRITE_LOCK_TIMEOUT); retry when it has finished."
            ) from exc
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

    def is_held(self) -> bool:
        """Whether a writer (another process, or another thread of this one) holds the lock now; never waits.

        A crashed writer's lock is released by the OS with its process: this is how a reader tells a
        live ingest from one that died mid-write.
        """
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False  # never taken on this machine
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

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


@dataclass(frozen=True)
class WriterMark:
    """Who is writing the store now (set by `begin_write`, cleared by `end_write`), with their last heartbeat."""

    host: str
    pid: int
    beat: float  # epoch seconds, renewed at every write batch

    def encode(self) -> str:
        return json.dumps({"host": self.host, "pid": self.pid, "beat": round(self.beat, 3)})

    @classmethod
    def decode(cls, value: object) -> WriterMark | None:
        if not isinstance(value, str) or not value:
            return None
        try:
            data = json.loads(value)
            return cls(str(data["host"]), int(data["pid"]), float(data["beat"]))
        except (ValueError, KeyError, TypeError):
            return None

    @classmethod
    def here(cls) -> WriterMark:
        return cls(socket.gethostname(), os.getpid(), time.time())


@dataclass(frozen=True)
class StoreState:
    """One read of the store's state: its generation, and the writer mid-write, if any."""

    generation: str
    writer: WriterMark | None = None


@dataclass(frozen=True)
class Record:
    """A stored record's identity, for `qa check`: id, the folder it was ingested from, its sentence count (chunks)."""

    id: str
    root: str = ""
    sentences: int = 0


class Store(Protocol):
    """What the engine, retrieval and `qa check` need from a store: chunk records and sentence vectors.

    A new store is one class implementing this and passing `tests/contract/`.
    """

    settings: Settings
    seen_generation: str | None  # as opened or last written by this client

    @property
    def exists(self) -> bool:
        """Whether there is a store to read (False: nothing was ever written)."""

    def count(self) -> int:
        """Chunks stored."""

    def state(self) -> StoreState:
        """The generation now and the writer mid-write, if any."""

    def generation(self) -> str:
        """Changes whenever the corpus changes; keys caches built from it."""

    def current_generation(self) -> tuple[str, bool]:
        """The generation now, and whether it changed since this client opened the store or wrote."""

    def warm_up(self) -> None:
        """Start loading whatever the first query needs (may do nothing)."""

    def begin_write(self) -> None:
        """Mark the store as being written (readers elsewhere keep their last complete corpus)."""

    def end_write(self) -> None:
        """Clear the mark `begin_write` set: the store is complete again."""

    def add(self, chunks: Sequence[Chunk], sentence_vectors: Sequence[np.ndarray], *, root: str) -> None:
        """Write each chunk's sentence vectors, then the chunk record; an id already stored is replaced."""

    def delete(self, chunk_ids: Sequence[str]) -> None:
        """Remove chunks and their sentence vectors."""

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, ordered by (source, start)."""

    def dense_sentences(self, vector: np.ndarray, k: int, *, available: int | None = None) -> list[SentenceHit]:
        """The `k` sentences nearest `vector` by cosine similarity, best first."""

    def sentence_vectors(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        """Stored vectors of the `(chunk_id, sentence_index)` sentences found."""

    def chunk_ids_by_source(self, root: str) -> dict[str, dict[str, str]]:
        """`{source: {chunk_id: file_hash}}` for chunks ingested from `root`."""

    def chunk_ids_of_source(self, source: str) -> dict[str, list[str]]:
        """`{root: [chunk ids]}` of the document `source`."""

    def damaged_chunks(self, chunks: Sequence[Chunk]) -> set[str]:
        """Ids of `chunks` whose record or any sentence vector is missing or unreadable."""

    def unreadable(self, kind: str, ids: Sequence[str]) -> set[str]:
        """Those of `ids` (`kind` is `chunks` or `sentences`) whose record, vector or chunk text can't be read back."""

    def records(self, kind: str) -> list[Record]:
        """Every record of `kind` (`chunks` or `sentences`), read without vectors."""

    def delete_sentences(self, ids: Sequence[str]) -> None:
        """Remove sentence vectors by id (those that belong to no chunk)."""

    def drop(self) -> None:
        """Remove every record and the recorded embedding model (`qa ingest --rebuild`)."""

    def document_records(self) -> list[dict[str, Any]]:
        """One entry per indexed document: source, title, root, chunk count, when it was indexed (epoch s)."""

    def collection_names(self) -> list[str]:
        """Every corpus this store's backend holds."""


def chunk_metadata(chunk: Chunk, root: str) -> dict[str, str | int | float]:
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


def check_model(settings: Settings, recorded: dict[str, Any], *, where: str, stored_dim: int | None = None) -> None:
    """Refuse an index whose vectors another embedding model wrote: one line that says how to re-index."""
    name, dim = embedding_model(settings)
    had_name = recorded.get("embed_model")
    had_dim = recorded.get("embed_dim") or stored_dim
    if (had_name is None or had_name == name) and (had_dim is None or dim is None or int(had_dim) == dim):
        return
    was = f"{had_name or 'another model'}" + (f" ({int(had_dim)} dims)" if had_dim else "")
    now = f"{name}" + (f" ({dim} dims)" if dim else "")
    raise EmbeddingMismatchError(
        f"The index in {where} (collection {settings.collection!r}) was built with {was}, but QA_EMBED_MODEL "
        f"gives {now}. Set QA_EMBED_MODEL back, or re-index with `qa ingest DIR --rebuild`."
    )


class ChromaStore:
    """The `Store` in Chroma (an embedded PersistentClient or a `chroma run` server), through chromadb's own client."""

    def __init__(self, settings: Settings, *, read_only: bool = False, fresh: bool = False, check: bool = True) -> None:
        self.settings = settings
        self._warming: threading.Thread | None = None
        self._meta: dict[str, Any] = {}  # the chunks collection's metadata as last read or written
        self._marking = False  # between begin_write and end_write
        self._writer: WriterMark | None = None  # the mark written, once this client has written since begin_write
        self.seen_generation: str | None = None
        self.client: Any = None
        self.chunks: Any = None
        self.sentences: Any = None
        with chroma_errors(settings):
            import chromadb
            import chromadb.config

            chroma_settings = chromadb.config.Settings(anonymized_telemetry=False, allow_reset=False)
            if settings.chroma_host:
                self.client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
                self.client.heartbeat()
            else:
                if read_only and not (settings.store_path / "chroma.sqlite3").exists():
                    return
                if not settings.store_path.exists():
                    # Chroma caches one client per path in-process; a folder deleted under a running
                    # process would otherwise be served from that stale cache ("no such table").
                    from chromadb.api.shared_system_client import SharedSystemClient

                    SharedSystemClient.clear_system_cache()
                elif fresh:
                    _forget_cached_system(settings.store_path)
                settings.store_path.mkdir(parents=True, exist_ok=True)
                try:
                    self.client = chromadb.PersistentClient(path=str(settings.store_path), settings=chroma_settings)
                except BaseException:
                    _forget_cached_system(settings.store_path)  # else the half-started client is reused next time
                    raise
            self.chunks = self._collection("chunks")
            self.sentences = self._collection("sentences")
            self._meta = dict(self.chunks.metadata or {})
            if check:
                self._check_model()
        self.seen_generation = str(self._meta.get("generation", "none"))

    def _collection(self, kind: str) -> Any:
        from chromadb.errors import InvalidArgumentError

        name = f"{self.settings.collection}-{kind}"
        try:
            return self.client.get_or_create_collection(
                name=name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        except (ValueError, InvalidArgumentError) as exc:  # names are checked in Settings; this is the backstop
            raise ConfigError(f"Bad QA_COLLECTION {self.settings.collection!r}: {exc}") from exc

    def _check_model(self) -> None:
        if "embed_model" in self._meta or not self.chunks.count():
            check_model(self.settings, self._meta, where=self.settings.describe_store())
            return
        # Written before the model was recorded: the stored vectors' size is what can be checked.
        first = self.sentences.get(limit=1, include=["embeddings"])
        stored = len(first["embeddings"][0]) if len(first["ids"]) else None
        check_model(self.settings, self._meta, where=self.settings.describe_store(), stored_dim=stored)

    # -- state -------------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.chunks is not None

    def count(self) -> int:
        if not self.exists:
            return 0
        with chroma_errors(self.settings):
            return int(self.chunks.count())

    def state(self) -> StoreState:
        if not self.exists:
            return StoreState("empty")
        with chroma_errors(self.settings):
            # No count() needed (it costs ~10 ms at 75k chunks): every write changes the generation.
            meta = self.client.get_collection(self.chunks.name).metadata or {}
        return StoreState(str(meta.get("generation", "none")), WriterMark.decode(meta.get("writer")))

    def generation(self) -> str:
        return self.state().generation

    def current_generation(self) -> tuple[str, bool]:
        """The generation now, and whether another process changed it since this client opened the store or wrote.

        An embedded client keeps its vector index in memory: after another process's ingest it
        misses the new vectors ("Error finding id") until it is opened again.
        """
        generation = self.generation()
        return generation, self.exists and generation != self.seen_generation

    def _write_state(self, **changes: Any) -> None:
        """Write the chunks collection's metadata whole (Chroma replaces it): a new generation plus `changes`."""
        generation = uuid.uuid4().hex
        model, dim = embedding_model(self.settings)
        meta = {**self._meta, "generation": generation, "embed_model": model, **changes}
        if dim is not None:
            meta.setdefault("embed_dim", dim)
        meta["writer"] = self._writer.encode() if self._writer is not None else ""
        self.chunks.modify(metadata=meta)
        self._meta = meta
        self.seen_generation = generation

    def begin_write(self) -> None:
        # The mark is written with the first change: a write that changes nothing (an unchanged
        # re-ingest) leaves the generation, and every reader's corpus, as they are.
        self._marking = True

    def end_write(self) -> None:
        self._marking = False
        if self._writer is not None:
            self._writer = None
            with chroma_errors(self.settings):
                self._write_state()

    def _beat(self) -> None:
        """Before and after each write batch: a new generation, and the writer's mark with a fresh heartbeat."""
        if self._marking:
            self._writer = WriterMark.here()
        self._write_state()

    def warm_up(self) -> None:
        """Have Chroma load the sentence index in the background, once per store.

        An embedded store reads its vector index on the first query (~0.6 s at 75k chunks), in Rust
        without holding the GIL, so a throwaway query started here overlaps that with whatever the
        caller does meanwhile (loading the corpus, embedding the question); `dense_sentences` waits
        for it. A server keeps its index loaded, so there is nothing to warm.
        """
        if not self.exists or self.settings.chroma_host or self._warming is not None:
            return
        sentences = self.sentences
        errors = store_error_types()

        def query_one() -> None:
            try:
                first = sentences.get(limit=1, include=["embeddings"])
                if len(first["ids"]):
                    sentences.query(query_embeddings=[list(first["embeddings"][0])], n_results=1, include=[])
            except errors as exc:  # best effort: the real query reports any problem
                log.debug("warming the sentence index failed: %s", exc)

        # Not a daemon: a process that exits before its first query waits for it, rather than
        # tearing the interpreter down under a thread inside Chroma.
        self._warming = threading.Thread(target=query_one, name="qa-warm-up")
        self._warming.start()

    # -- writes ------------------------------------------------------------------------------

    def add(self, chunks: Sequence[Chunk], sentence_vectors: Sequence[np.ndarray], *, root: str) -> None:
        """Write sentence vectors, then the chunk records (chunk vector = mean of its sentences)."""
        if not chunks:
            return
        s_ids: list[str] = []
        s_vectors: list[np.ndarray] = []
        s_metas: list[dict[str, str | int | float]] = []
        c_vectors: list[np.ndarray] = []
        for chunk, vectors in zip(chunks, sentence_vectors):
            vectors = np.asarray(vectors, dtype=np.float32)
            s_ids.extend(f"{chunk.id}:{i}" for i in range(len(chunk.sentences)))
            s_vectors.append(vectors)
            s_metas.extend({"chunk_id": chunk.id} for _ in chunk.sentences)
            mean = vectors.mean(axis=0)
            c_vectors.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        sentences = np.concatenate(s_vectors)
        self._check_dim(int(sentences.shape[1]))
        indexed_at = round(time.time(), 3)  # when the document's chunks were written, for `qa docs list` and the API
        c_ids = [c.id for c in chunks]
        c_metas: list[dict[str, str | int | float]] = [{**chunk_metadata(c, root), "indexed_at": indexed_at} for c in chunks]
        with chroma_errors(self.settings):
            self._beat()
            # upsert: a re-run after a killed ingest may meet ids already written; replace, never duplicate.
            for i in range(0, len(s_ids), _BATCH):
                self.sentences.upsert(ids=s_ids[i : i + _BATCH], embeddings=sentences[i : i + _BATCH], metadatas=s_metas[i : i + _BATCH])
            chunk_vectors = np.stack(c_vectors)
            for i in range(0, len(c_ids), _BATCH):
                self.chunks.upsert(
                    ids=c_ids[i : i + _BATCH], embeddings=chunk_vectors[i : i + _BATCH],
                    metadatas=c_metas[i : i + _BATCH], documents=[c.text for c in chunks[i : i + _BATCH]],
                )
            self._beat()

    def _check_dim(self, dim: int) -> None:
        recorded = self._meta.get("embed_dim")
        if recorded is None:
            if self.count():
                check_model(self.settings, self._meta, where=self.settings.describe_store(), stored_dim=self._stored_dim())
            self._meta["embed_dim"] = dim
            recorded = dim
        if int(recorded) != dim:
            raise EmbeddingMismatchError(
                f"The index in {self.settings.describe_store()} holds {int(recorded)}-dimension vectors, but the "
                f"embedder gives {dim}. Set QA_EMBED_MODEL back, or re-index with `qa ingest DIR --rebuild`."
            )

    def _stored_dim(self) -> int | None:
        with chroma_errors(self.settings):
            first = self.sentences.get(limit=1, include=["embeddings"])
        return len(first["embeddings"][0]) if len(first["ids"]) else None

    def delete(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids or not self.exists:
            return
        with chroma_errors(self.settings):
            self._beat()
            ids = list(chunk_ids)
            for i in range(0, len(ids), _BATCH):
                batch = ids[i : i + _BATCH]
                self.sentences.delete(where={"chunk_id": {"$in": batch}})
                self.chunks.delete(ids=batch)
            self._beat()

    def delete_sentences(self, ids: Sequence[str]) -> None:
        if not ids or not self.exists:
            return
        with chroma_errors(self.settings):
            self._beat()
            for i in range(0, len(ids), _BATCH):
                self.sentences.delete(ids=list(ids[i : i + _BATCH]))
            self._beat()

    def drop(self) -> None:
        """Delete both collections (`qa ingest --rebuild`); the next write creates them afresh."""
        if self.client is None:
            return
        with chroma_errors(self.settings):
            names = {str(getattr(c, "name", c)) for c in self.client.list_collections()}
            for kind in _KINDS:
                if f"{self.settings.collection}-{kind}" in names:
                    self.client.delete_collection(f"{self.settings.collection}-{kind}")
        self.chunks = self.sentences = None
        self._meta = {}

    # -- reads -------------------------------------------------------------------------------

    def _pages(self, collection: Any, **query: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            got = collection.get(limit=_PAGE, offset=offset, **query)
            yield got
            if len(got["ids"]) < _PAGE:
                return
            offset += _PAGE

    def all_chunks(self) -> list[Chunk]:
        if not self.exists:
            return []
        out: list[Chunk] = []
        with chroma_errors(self.settings):
            for got in self._pages(self.chunks, include=["documents", "metadatas"]):
                out.extend(chunk_from_record(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]))
        out.sort(key=lambda c: (c.source, c.start))
        return out

    def dense_sentences(self, vector: np.ndarray, k: int, *, available: int | None = None) -> list[SentenceHit]:
        if not self.exists:
            return []
        warming = self._warming
        if warming is not None:
            warming.join()  # one index load, not two racing
        with chroma_errors(self.settings):
            n = available if available is not None else self.sentences.count()
            if n == 0:
                return []
            result = self.sentences.query(query_embeddings=[vector.tolist()], n_results=min(k, n), include=["distances"])
        hits = []
        for sid, distance in zip(result["ids"][0], result["distances"][0]):
            chunk_id, _, index = str(sid).rpartition(":")
            hits.append(SentenceHit(chunk_id, int(index), 1.0 - float(distance)))  # cosine space: distance = 1 - cos
        return hits

    def sentence_vectors(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], np.ndarray]:
        if not keys or not self.exists:
            return {}
        with chroma_errors(self.settings):
            got = self.sentences.get(ids=[f"{c}:{i}" for c, i in keys], include=["embeddings"])
        out = {}
        for sid, e in zip(got["ids"], got["embeddings"]):
            chunk_id, _, index = str(sid).rpartition(":")
            out[(chunk_id, int(index))] = np.asarray(e, dtype=np.float32)
        return out

    def chunk_ids_by_source(self, root: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        if not self.exists:
            return out
        with chroma_errors(self.settings):
            for got in self._pages(self.chunks, where={"root": root}, include=["metadatas"]):
                for cid, meta in zip(got["ids"], got["metadatas"]):
                    out.setdefault(str(meta["source"]), {})[cid] = str(meta.get("file_hash", ""))
        return out

    def chunk_ids_of_source(self, source: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if not self.exists:
            return out
        with chroma_errors(self.settings):
            got = self.chunks.get(where={"source": source}, include=["metadatas"])
        for cid, meta in zip(got["ids"], got["metadatas"]):
            out.setdefault(str(meta.get("root", "")), []).append(str(cid))
        return out

    def unreadable(self, kind: str, ids: Sequence[str]) -> set[str]:
        collection = self.chunks if kind == "chunks" else self.sentences
        if not ids or collection is None:
            return set(ids)
        # A sentence's text is a slice of its chunk's: only chunks store text.
        include = ["embeddings", "documents"] if kind == "chunks" else ["embeddings"]
        errors = store_error_types()

        def readable(batch: list[str]) -> set[str]:
            got = collection.get(ids=batch, include=include)
            texts = got["documents"] if kind == "chunks" else [True] * len(got["ids"])
            return {str(i) for i, e, d in zip(got["ids"], got["embeddings"], texts) if e is not None and len(e) and d}

        bad: set[str] = set()
        for at in range(0, len(ids), _VERIFY_BATCH):
            batch = list(ids[at : at + _VERIFY_BATCH])
            try:
                bad |= set(batch) - readable(batch)
                continue
            except errors as exc:  # one damaged vector fails the whole batch: find which, one by one
                log.debug("reading back %d %s failed (%s); checking them one by one", len(batch), kind, exc)
            for one in batch:
                try:
                    bad |= {one} - readable([one])
                except errors:
                    bad.add(one)
        return bad

    def damaged_chunks(self, chunks: Sequence[Chunk]) -> set[str]:
        """Ids of `chunks` whose chunk record or any sentence vector is missing or unreadable.

        ~0.05 s per 1,000 chunks of 3 sentences, so an unchanged re-ingest stays a small share of the first.
        """
        with chroma_errors(self.settings):
            bad = self.unreadable("chunks", [c.id for c in chunks])
            sentence_ids = [f"{c.id}:{i}" for c in chunks for i in range(len(c.sentences))]
            bad |= {sid.rpartition(":")[0] for sid in self.unreadable("sentences", sentence_ids)}
        return bad

    def records(self, kind: str) -> list[Record]:
        collection = self.chunks if kind == "chunks" else self.sentences
        out: list[Record] = []
        if collection is None:
            return out
        with chroma_errors(self.settings):
            for got in self._pages(collection, include=["metadatas"]):
                for rid, meta in zip(got["ids"], got["metadatas"]):
                    meta = meta or {}
                    n = len(json.loads(str(meta.get("sentences", "[]")))) if kind == "chunks" else 0
                    out.append(Record(str(rid), str(meta.get("root", "")), n))
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
        if not self.exists:
            return []
        with chroma_errors(self.settings):
            metas = [m for got in self._pages(self.chunks, include=["metadatas"]) for m in got["metadatas"]]
        return document_entries(metas)


def document_entries(metas: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (source, root) of these chunk metadatas: title, chunk count, latest `indexed_at`."""
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for meta in metas:
        key = (str(meta["source"]), str(meta.get("root", "")))
        entry = docs.setdefault(key, {"source": key[0], "title": str(meta.get("title", "")), "root": key[1], "chunks": 0, "indexed_at": None})
        entry["chunks"] += 1
        at = meta.get("indexed_at")
        if isinstance(at, (int, float)) and (entry["indexed_at"] is None or at > entry["indexed_at"]):
            entry["indexed_at"] = float(at)
    return sorted(docs.values(), key=lambda d: (d["source"], d["root"]))


def open_store(settings: Settings, *, read_only: bool = False, fresh: bool = False) -> Store:
    """The store these settings name (Chroma, embedded or a server)."""
    return ChromaStore(settings, read_only=read_only, fresh=fresh)


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
