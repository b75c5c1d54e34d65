"""The engine every front end calls: `Engine.from_settings()`, `.ingest(folder)`, `.ask(question, history)`."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.errors import IndexMissingError, InputError, QAError, StoreError
from qa.querylog import logged
from qa.settings import Settings
from qa.types import Answer, Chunk, IngestReport

if TYPE_CHECKING:
    from qa.answer import Answerer, Question, Search
    from qa.answer.extractive import ExtractiveAnswerer
    from qa.answer.llm import LLMAnswerer
    from qa.embed import Embedder
    from qa.passages import Passages
    from qa.retrieve import Corpus, Retriever, Retrieval
    from qa.store import Store, WriterLock, WriterMark

log = logging.getLogger(__name__)

Message = dict[str, str]
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_EMBED_GROUP = 256  # chunks embedded and written per step: a killed ingest loses at most one step


def _forget_texts(data_dir: Path, root: str, sources: Sequence[str]) -> None:
    from qa.documents import text_path
    from qa.types import doc_id

    for source in sources:
        text_path(data_dir, doc_id(root, source)).unlink(missing_ok=True)


def clean_question(question: str, *, limit: int) -> str:
    """Strip control characters and outer space; refuse empty or over-long questions."""
    from qa.errors import EmptyQuestionError, QuestionTooLongError

    if not isinstance(question, str):
        raise InputError("The question must be text.")
    if len(question) > limit:
        raise QuestionTooLongError(
            f"The question is too long ({len(question):,} characters; the limit is {limit:,}, QA_MAX_QUESTION_CHARS).",
            length=len(question), limit=limit,
        )
    question = _ANSI_ESCAPE.sub(" ", question)  # a pasted terminal colour code is not part of the question
    cleaned = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in question)
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise EmptyQuestionError("The question is empty: type a question about the documents.")
    return cleaned


def __getattr__(name: str) -> Any:
    # `follow_up_context` and `user_turns` live in qa/answer/followup.py now; loaded on use (NumPy), not by `qa --help`
    if name in ("follow_up_context", "user_turns"):
        from qa.answer import followup

        return getattr(followup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Engine:
    """Ingests folders into the store and answers questions with citations. Safe to share between threads.

    Writes (`ingest`, or anything inside `writing()`) hold the store's writer lock, so one process
    writes at a time; questions never wait for them. While this engine writes, its questions use the
    corpus as it was; the new one is built before it is swapped in. When another process has changed
    the store, the next question reopens it and reloads the corpus first.
    """

    def __init__(self, settings: Settings, *, store: Store | None = None, answerer: Answerer | None = None) -> None:
        """`store`: use this store (any `qa.store.Store`, e.g. an in-memory one) instead of the Chroma one the settings name;
        `answerer`: this answerer (any `qa.answer.Answerer`) instead of the configured mode's."""
        self.settings = settings
        self._injected_store = store
        self._answerer = answerer  # None: the configured mode's (`answerer`)
        self._lock = threading.RLock()  # held briefly: to load or swap parts, never across a write
        self._writer: WriterLock | None = None
        self._writes = 0  # writes in progress in this engine; questions keep the corpus they have
        self._store: Store | None = store
        self._embedder: Embedder | None = None
        self._corpus: Corpus | None = None
        self._corpus_generation: str | None = None
        self._retriever: Retriever | None = None
        self._extractive: ExtractiveAnswerer | None = None
        self._llm: LLMAnswerer | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> Engine:
        if settings is None:
            settings = Settings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        return cls(settings)

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, collection: str | None = None, must_exist: bool = False, **options: Any
    ) -> Engine:
        """How every front end starts: settings validated (read from `QA_*` when None), the store's lock probed.

        A store another process keeps locked fails here within QA_LOCK_WAIT seconds, with one line,
        before Chroma would wait 1000 s. `collection` picks another collection than QA_COLLECTION;
        with `must_exist`, an unknown one is a ConfigError listing those there are. `options` go to
        the engine class (a subclass's own arguments). The engine owns the reader/writer gate: writes
        go through `writing()`, and questions keep the last complete index until a write ends.
        """
        from qa.errors import ConfigError
        from qa.settings import check_collection_name, load_settings
        from qa.store import probe_unlocked

        settings = load_settings() if settings is None else settings
        check_collection_name(settings.collection)
        settings.slack_collections()  # a malformed QA_SLACK_CHANNEL_COLLECTIONS fails at start, not on a message
        probe_unlocked(settings)
        engine = cls(settings, **options)
        if collection and collection != settings.collection:
            check_collection_name(collection)  # a bad name fails here, before Chroma sees it
            if must_exist and collection not in engine.collections():
                known = ", ".join(engine.collections()) or "none yet"
                raise ConfigError(
                    f"No collection {collection!r} (collections: {known}). Run `qa ingest DIR --collection {collection}` first."
                )
            engine = engine.for_collection(collection)
        return engine

    def for_collection(self, name: str | None) -> Engine:
        """An engine on collection `name` (this one for None or its own), sharing the loaded model and answerers."""
        settings = self.settings.collection_settings(name)
        if settings is self.settings:
            return self
        return self._sibling(settings, store=None, answerer=self._answerer)

    def with_answerer(self, answerer: Answerer) -> Engine:
        """An engine on the same store and settings that answers with `answerer` (e.g. a baseline to compare against)."""
        return self._sibling(self.settings, store=self._injected_store, answerer=answerer)

    def _sibling(self, settings: Settings, *, store: Store | None, answerer: Answerer | None) -> Engine:
        """A new engine sharing this one's loaded embedding model and answerers (they hold no per-collection state)."""
        other = Engine(settings, store=store, answerer=answerer)
        other._embedder, other._extractive, other._llm = self.embedder, self._extractive, self._llm
        return other

    # -- parts, loaded once and on first use -------------------------------------------------

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None or not self._store.exists:
                self._store = self._open_store()
            return self._store

    def _open_store(self, *, fresh: bool = False) -> Store:
        """The injected store, or the settings' Chroma store opened (`fresh`: reading what other processes wrote)."""
        if self._injected_store is not None:
            return self._injected_store
        from qa.store import open_store

        return open_store(self.settings, fresh=fresh)

    def _current_store(self, *, keep_during_write: bool = False) -> tuple[Store, str]:
        """The store and its generation, opened again if another process has written to it since it was opened.

        With `keep_during_write` (answering questions), a store another process is writing right now
        is left as it was opened, and the generation of the corpus already loaded is returned: questions
        keep the last complete corpus until the writer finishes, or is found dead (its lock released).
        """
        with self._lock:
            store = self.store
            state = store.state()
            generation, stale = state.generation, store.exists and state.generation != store.seen_generation
            if (stale and keep_during_write and self._corpus is not None and self._corpus_generation is not None
                    and state.writer is not None and self._writer_alive(state.writer)):
                return store, self._corpus_generation
            if stale:
                log.info("the store changed in another process; reopening %s", self.settings.describe_store())
                self._store = store = self._open_store(fresh=True)
                self._retriever = None
                generation = store.seen_generation or store.generation()
            return store, generation

    def _writer_alive(self, mark: WriterMark) -> bool:
        """Whether the writer that marked the store is still writing: its lock is held (this machine), or its heartbeat is recent."""
        import socket

        from qa.store import WRITER_STALE_S

        if mark.host == socket.gethostname():
            return self.writer_lock.is_held()
        return time.time() - mark.beat < WRITER_STALE_S

    def reopen(self) -> None:
        """Open the store afresh on next use and drop everything loaded from it (after it was replaced)."""
        from qa.store import _forget_cached_system

        with self._lock:
            if not self.settings.chroma_host and self._injected_store is None:
                _forget_cached_system(self.settings.store_path)
            self._store = self._injected_store
            self._corpus = self._corpus_generation = self._retriever = None

    @property
    def writer_lock(self) -> WriterLock:
        with self._lock:
            if self._writer is None:
                from qa.store import WriterLock

                self._writer = WriterLock(self.settings)
            return self._writer

    @contextlib.contextmanager
    def writing(self, *, command: str | None = None) -> Iterator[None]:
        """Hold the store's writer lock (waiting up to QA_WRITE_LOCK_TIMEOUT); questions go on meanwhile."""
        with self.writer_lock.hold(command=command):
            with self._lock:
                self._writes += 1
            try:
                yield
            finally:
                with self._lock:
                    self._writes -= 1

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from qa.embed import make_embedder

                self._embedder = make_embedder(self.settings)
            return self._embedder

    @property
    def corpus(self) -> Corpus:
        with self._lock:
            if self._writes and self._corpus is not None:
                return self._corpus  # mid-write: the last complete corpus, swapped when the write ends
            store, generation = self._current_store(keep_during_write=True)
            if self._corpus is None or generation != self._corpus_generation:
                from qa.retrieve import Corpus

                store.warm_up()  # Chroma loads its vector index while the corpus loads here
                self._corpus = Corpus.load(store, self.settings.data_dir / "cache")
                self._corpus_generation = generation
                self._retriever = None
            return self._corpus

    def _swap_corpus(self) -> None:
        """After a write: build the new corpus, then swap it in at once (questions meanwhile use the old one)."""
        from qa.retrieve import Corpus

        store = self.store
        generation = store.generation()
        corpus = Corpus.load(store, self.settings.data_dir / "cache")
        with self._lock:
            self._corpus, self._corpus_generation, self._retriever = corpus, generation, None

    @property
    def retriever(self) -> Retriever:
        with self._lock:
            corpus = self.corpus
            if self._retriever is None:
                from qa.retrieve import Retriever

                self._retriever = Retriever(self.store, corpus, self.embedder)
            return self._retriever

    def _retrieve(self, query: str, k: int, *, mode: str = "hybrid") -> tuple[Retriever, Retrieval]:
        """One retriever (one corpus snapshot) and its retrieval; a store error is retried once on a reopened store.

        Another process may write between the freshness check and the query; reopening then
        answers from what it wrote instead of failing the question.
        """
        retriever = self.retriever
        try:
            return retriever, retriever.retrieve(query, k, mode=mode)
        except StoreError as exc:
            log.warning("retrieval failed (%s); reopening the store and retrying once", exc)
            with self._lock:
                # Never while this engine writes: two clients of one process writing one store is
                # the damage the writer lock exists to prevent.
                if self._store is retriever.store and not self._writes:
                    self._store = self._open_store(fresh=True)
                    self._corpus = self._retriever = None
            retriever = self.retriever
            return retriever, retriever.retrieve(query, k, mode=mode)

    @property
    def answerer(self) -> Answerer:
        """The injected answerer, or the configured mode's: with QA_LLM_BASE_URL or OPENAI_API_KEY the LLM one,
        falling back to the extractive one when the model fails; otherwise the extractive one."""
        if self._answerer is not None:
            return self._answerer
        if not self.settings.llm_enabled:
            return self.extractive_answerer
        from qa.answer.fallback import Fallback

        return Fallback(self.llm_answerer, self.extractive_answerer, debug=self.settings.debug)

    @property
    def extractive_answerer(self) -> ExtractiveAnswerer:
        with self._lock:
            if self._extractive is None:
                from qa.answer.extractive import ExtractiveAnswerer

                self._extractive = ExtractiveAnswerer(max_sentences=self.settings.answer_sentences)
            return self._extractive

    @property
    def llm_answerer(self) -> LLMAnswerer:
        with self._lock:
            if self._llm is None:
                from qa.answer.llm import LLMAnswerer

                self._llm = LLMAnswerer(self.settings)
            return self._llm

    @property
    def mode(self) -> str:
        """`extractive`, or `llm:<model>` when an LLM is configured (a fallback answer still says `extractive`)."""
        if self._answerer is not None:
            return self._answerer.mode
        return f"llm:{self.settings.llm_model}" if self.settings.llm_enabled else "extractive"

    # -- ingest ---------------------------------------------------------------------------------

    def ingest(
        self, folder: str | Path | None = None, *, progress: bool | None = None,
        on_progress: Callable[[int, int], None] | None = None, rebuild: bool = False,
    ) -> IngestReport:
        """Bring the store in line with `folder`: embed new or changed files, drop removed ones.

        Holds the store's writer lock throughout (a second writer waits, then fails naming this
        one), and marks the store as being written, so other processes keep answering from the
        last complete index. Chunks kept as they are get their stored vectors read back: any
        missing or unreadable is embedded again (`chunks_repaired`). `rebuild` first drops the
        collection (every folder indexed into it), e.g. after changing `QA_EMBED_MODEL`.
        """
        from qa.documents import chunk_document, load_path, root_key, save_text

        started = time.perf_counter()
        path = Path(folder) if folder is not None else self.settings.seeds_dir
        scan = load_path(path, max_bytes=self.settings.max_file_mb * 1_000_000)
        if not scan.documents and not scan.skipped:
            raise InputError(f"No documents in {path}. Add documents there, or pass another folder.")
        if scan.only is not None and not scan.documents:  # one file asked for, and it can't be read: say why
            raise InputError(f"Can't index {path}: {next(iter(scan.skipped.values()))}.")
        for source, reason in scan.skipped.items():
            log.debug("skipped %s: %s", source, reason)  # the report carries them; front ends print them once
        report = IngestReport(skipped=dict(scan.skipped))
        root = root_key(scan.root or path)
        with self.writing():
            with self._marked_write(rebuild=rebuild) as store:
                existing = store.chunk_ids_by_source(root)
                if scan.only is not None:  # one file: nothing else in its folder is compared, so nothing else is removed
                    existing = {source: ids for source, ids in existing.items() if source in scan.only}
                to_add: list[Chunk] = []
                kept: list[Chunk] = []
                to_delete: list[str] = []
                for doc in scan.documents:
                    save_text(self.settings.data_dir, doc)
                    chunks = chunk_document(doc, count_tokens=self.embedder.count_tokens, max_tokens=self.settings.chunk_tokens)
                    old = existing.get(doc.source, {})
                    new_ids = {c.id for c in chunks}
                    kept.extend(c for c in chunks if c.id in old)
                    if set(old) == new_ids:
                        report.unchanged.append(doc.source)
                        continue
                    (report.updated if old else report.added).append(doc.source)
                    to_add.extend(c for c in chunks if c.id not in old)
                    to_delete.extend(cid for cid in old if cid not in new_ids)
                present = {d.source for d in scan.documents} | set(scan.skipped)
                for source, ids in existing.items():
                    if source not in present:
                        report.removed.append(source)
                        to_delete.extend(ids)
                damaged = store.damaged_chunks(kept) if kept else set()
                if damaged:
                    log.warning("%d stored chunks had missing or unreadable vectors; embedding them again", len(damaged))
                repaired = [c for c in kept if c.id in damaged]
                self._embed_and_write(store, to_add + repaired, root, progress, on_progress)
                store.delete(to_delete)
                _forget_texts(self.settings.data_dir, root, report.removed)
                report.chunks_embedded = len(to_add) + len(repaired)
                report.chunks_repaired = len(repaired)
                report.chunks_deleted = len(to_delete)
                changed = bool(to_add or repaired or to_delete)
            if changed and self._corpus is not None:
                self._swap_corpus()  # after the mark is cleared: a process that answers questions gets the new corpus whole
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    @contextlib.contextmanager
    def _marked_write(self, *, rebuild: bool = False) -> Iterator[Store]:
        """The store to write (under the writer lock), marked as being written until the block ends."""
        if rebuild:
            self._drop_store()
        # Opened again if another writer changed it while this one waited for the lock: an
        # embedded client writing from an outdated in-memory index is what damages a store.
        store, _ = self._current_store()
        store.begin_write()
        try:
            yield store
        finally:
            store.end_write()

    def _drop_store(self) -> None:
        """Delete this collection's records (`--rebuild`), whatever embedding model wrote them."""
        with self._lock:
            if self._injected_store is not None:
                self._injected_store.drop()
            else:
                from qa.store import ChromaStore

                ChromaStore(self.settings, fresh=True, check=False).drop()
                self._store = None
            self._corpus = self._corpus_generation = self._retriever = None

    def _embed_and_write(
        self, store: Store, chunks: list[Any], root: str, progress: bool | None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if not chunks:
            return
        total = sum(len(c.sentences) for c in chunks)
        done = 0
        show = progress if progress is not None else total >= 500
        bar: Any = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="sent", desc="Embedding", mininterval=0.5)
        try:
            for i in range(0, len(chunks), _EMBED_GROUP):
                group = chunks[i : i + _EMBED_GROUP]
                texts = [t for c in group for t in c.sentence_texts()]
                vectors = self.embedder.embed(texts, batch_size=self.settings.embed_batch_size)
                per_chunk, at = [], 0
                for c in group:
                    per_chunk.append(vectors[at : at + len(c.sentences)])
                    at += len(c.sentences)
                store.add(group, per_chunk, root=root)  # embedding above ran without holding _lock
                if bar is not None:
                    bar.update(len(texts))
                done += len(texts)
                if on_progress is not None:
                    on_progress(done, total)
        finally:
            if bar is not None:
                bar.close()

    # -- ask ------------------------------------------------------------------------------------

    @logged  # one line per question in QA_DATA_DIR/logs/questions.jsonl
    def ask(self, question: str, history: Sequence[Message | str] | None = None, *, k: int | None = None) -> Answer:
        """Answer `question` from the indexed documents, given the conversation so far."""
        asked, search = self._prepare(question, history, k=k)
        return self.answerer.answer(asked, search)

    @logged
    def stream(self, question: str, history: Sequence[Message | str] | None = None, *, k: int | None = None) -> Iterator[str | Answer]:
        """Yield text deltas as the answer is produced, then the final `Answer` as the last item.

        The deltas add up to the final `Answer.text`, with one exception: if the LLM fails after
        some deltas were sent, the final item is the extractive answer with a `notice`, and front
        ends should show it in place of the partial text. The extractive answerer has its whole
        text at once, so it yields one delta.
        """
        asked, search = self._prepare(question, history, k=k)
        yield from self.answerer.stream(asked, search)

    def _prepare(self, question: str, history: Sequence[Message | str] | None, *, k: int | None) -> tuple[Question, Search]:
        """The cleaned question and the search its answerer retrieves with (after checking there is an index)."""
        from qa.answer import Question

        cleaned = clean_question(question, limit=self.settings.max_question_chars)
        self._require_index()
        return Question.of(cleaned, history), self.search_for(k or self.settings.top_k)

    def search_for(self, k: int) -> Search:
        """A `Search` returning the top `k` passages: what an answerer retrieves with.

        Each search uses one retriever (one corpus snapshot) throughout, even if an ingest swaps the
        corpus meanwhile, and its `Passages` hold everything the answerer needs from it.
        """

        def search(query: str, *, mode: str = "hybrid") -> Passages:
            started = time.perf_counter()
            retriever, retrieval = self._retrieve(query, k, mode=mode)
            return retriever.passages(retrieval, started=started)

        return search

    def retrieve(self, question: str, *, k: int | None = None, mode: str = "hybrid") -> list[Chunk]:
        """Just the ranked chunks, for inspection and evaluation."""
        question = clean_question(question, limit=self.settings.max_question_chars)
        self._require_index()
        return self.retriever.retrieve(question, k or self.settings.top_k, mode=mode).chunks

    def _require_index(self) -> None:
        if not self.corpus.chunks:
            raise IndexMissingError(
                f"No index yet in {self.settings.describe_store()}. Run `qa ingest {self.settings.seeds_dir}` first."
            )

    # -- info -----------------------------------------------------------------------------------

    def documents(self) -> list[dict[str, Any]]:
        """Indexed documents with their chunk counts, for the corpus panel: one per (folder, path)."""
        counts: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in self.corpus.chunks:
            entry = counts.setdefault(
                (chunk.root, chunk.source),
                {"source": chunk.source, "folder": chunk.folder, "title": chunk.title, "chunks": 0},
            )
            entry["chunks"] += 1
        return sorted(counts.values(), key=lambda d: (d["source"], d["folder"]))

    def document_text(self, doc_id: str) -> str | None:
        """A document's extracted text as indexed (what citations' offsets refer to), by `Citation.doc_id`."""
        from qa.documents import read_saved_text

        return read_saved_text(self.settings.data_dir, doc_id)

    def document_list(self) -> list[dict[str, Any]]:
        """Indexed documents with chunk counts and when each was indexed (`qa docs list`, the API)."""
        return self.store.document_records()

    def collections(self) -> list[str]:
        """Collections in this store (embedded folder or Chroma server)."""
        return self.store.collection_names()

    def delete_document(self, source: str) -> dict[str, list[str]]:
        """Drop document `source` from the index (its file stays); `{root: [chunk ids deleted]}`, empty if unknown."""
        with self.writing(command=f"delete {source}"):
            with self._marked_write() as store:
                found = store.chunk_ids_of_source(source)
                store.delete([cid for ids in found.values() for cid in ids])
            for root in found:
                _forget_texts(self.settings.data_dir, root, [source])
            if found and self._corpus is not None:
                self._swap_corpus()
        return found

    def info(self) -> dict[str, Any]:
        from qa.answer.llm import server_url
        from qa.embed import bundled_model_dir

        embed = {"minilm": "all-MiniLM-L6-v2 (bundled, NumPy)", "minilm-torch": "all-MiniLM-L6-v2 (bundled, torch)",
                 "fake": "fake (hashed words, tests only)"}
        chunks = self.chunk_count()
        return {
            "store": self.settings.describe_store(),
            "collection": self.settings.collection,
            "chunks": chunks,
            "documents": len(self.documents()) if chunks else 0,
            "embedding_model": embed.get(self.settings.embed_model, f"openai:{self.settings.openai_embed_model}"),
            "model_dir": str(bundled_model_dir()),
            "mode": self.mode,
            **({"llm_server": server_url(self.settings, shown=True)} if self.settings.llm_enabled else {}),
        }

    # -- what front ends ask of the engine (they never reach into the store, model or answerers) ----

    def chunk_count(self) -> int:
        """Chunks indexed in this engine's collection (0 before the first ingest)."""
        return self.store.count()

    def is_empty(self) -> bool:
        """Whether nothing is indexed yet in this engine's collection."""
        return self.chunk_count() == 0

    def chunks(self) -> list[Chunk]:
        """Every indexed chunk, as the questions see them (the last complete index)."""
        return list(self.corpus.chunks)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Word pieces of `texts` by the embedding model's tokenizer (the API's `usage`)."""
        texts = [t for t in texts if t]
        return int(sum(self.embedder.count_tokens(texts))) if texts else 0

    def warm_up(self) -> None:
        """Load the model and index now (and the LLM client library), so the first question doesn't pay for it.

        Sends nothing to an LLM server. A store or index problem is left for the first question to report.
        """
        try:
            self.retriever.retrieve("warm up", 1)
            if self.settings.llm_enabled:
                self.llm_answerer.load()
        except QAError as exc:
            log.warning("%s", exc)
