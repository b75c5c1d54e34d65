"""The engine every front end calls: `Engine.from_settings()`, `.ingest(folder)`, `.ask(question, history)`."""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa.errors import IndexMissingError, InputError
from qa.settings import Settings
from qa.types import Answer, IngestReport

if TYPE_CHECKING:
    from qa.embed import Embedder
    from qa.retrieve import Corpus, Retriever
    from qa.store import Store

log = logging.getLogger(__name__)

Message = dict[str, str]
_FOLLOW_UP = re.compile(
    r"\b(he|she|him|her|his|hers|they|them|their|theirs|it|its|this|that|these|those|there|then|the same|else|"
    r"also|what about|how about|and)\b",
    re.IGNORECASE,
)
_EMBED_GROUP = 256  # chunks embedded and written per step: a killed ingest loses at most one step


def clean_question(question: str, *, limit: int) -> str:
    """Strip control characters and outer space; refuse empty or over-long questions."""
    if not isinstance(question, str):
        raise InputError("The question must be text.")
    if len(question) > limit:
        raise InputError(
            f"The question is too long ({len(question):,} characters; the limit is {limit:,}, QA_MAX_QUESTION_CHARS)."
        )
    cleaned = "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else " " for ch in question)
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise InputError("The question is empty: type a question about the documents.")
    return cleaned


def user_turns(history: Sequence[Message | str] | None) -> list[str]:
    """Earlier user questions, from OpenAI/Gradio-style messages or plain strings."""
    turns: list[str] = []
    for message in history or []:
        if isinstance(message, str):
            turns.append(message)
        elif isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                turns.append(content)
    return turns


def follow_up_context(question: str, history: Sequence[Message | str] | None) -> str:
    """The earlier question a follow-up leans on ("What did he say…?"), or "" for a standalone question."""
    from qa.text import content_words

    turns = user_turns(history)
    if not turns:
        return ""
    if _FOLLOW_UP.search(question) or len(content_words(question)) <= 2:
        return turns[-1]
    return ""


class Engine:
    """Ingests folders into the store and answers questions with citations. Safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._embedder: Embedder | None = None
        self._corpus: Corpus | None = None
        self._corpus_generation: str | None = None
        self._retriever: Retriever | None = None
        self._answerer: Any = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> Engine:
        if settings is None:
            settings = Settings(**overrides)
        elif overrides:
            settings = settings.model_copy(update=overrides)
        return cls(settings)

    # -- parts, loaded once and on first use -------------------------------------------------

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None or not self._store.exists:
                from qa.store import Store

                self._store = Store(self.settings)
            return self._store

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
            generation = self.store.generation()
            if self._corpus is None or generation != self._corpus_generation:
                from qa.retrieve import Corpus

                self._corpus = Corpus.load(self.store, self.settings.data_dir / "cache")
                self._corpus_generation = generation
                self._retriever = None
            return self._corpus

    @property
    def retriever(self) -> Retriever:
        with self._lock:
            corpus = self.corpus
            if self._retriever is None:
                from qa.retrieve import Retriever

                self._retriever = Retriever(self.store, corpus, self.embedder)
            return self._retriever

    @property
    def answerer(self) -> Any:
        with self._lock:
            if self._answerer is None:
                from qa.answer.extractive import ExtractiveAnswerer

                self._answerer = ExtractiveAnswerer(max_sentences=self.settings.answer_sentences)
            return self._answerer

    @property
    def mode(self) -> str:
        return "extractive"

    # -- ingest ---------------------------------------------------------------------------------

    def ingest(self, folder: str | Path | None = None, *, progress: bool | None = None) -> IngestReport:
        """Bring the store in line with `folder`: embed new or changed files, drop removed ones."""
        from qa.documents import chunk_document, load_folder

        started = time.perf_counter()
        root = Path(folder) if folder is not None else self.settings.seeds_dir
        scan = load_folder(root, max_bytes=self.settings.max_file_mb * 1_000_000)
        if not scan.documents and not scan.skipped:
            raise InputError(f"No .txt or .md files in {root}. Add documents there, or pass another folder.")
        for source, reason in scan.skipped.items():
            log.warning("skipped %s: %s", source, reason)
        report = IngestReport(skipped=dict(scan.skipped))
        root_key = str(root.resolve())
        with self._lock:
            store = self.store
            existing = store.chunk_ids_by_source(root_key)
            to_add = []
            to_delete: list[str] = []
            for doc in scan.documents:
                chunks = chunk_document(doc, count_tokens=self.embedder.count_tokens, max_tokens=self.settings.chunk_tokens)
                old = existing.get(doc.source, {})
                new_ids = {c.id for c in chunks}
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
            self._embed_and_write(to_add, root_key, progress)
            store.delete(to_delete)
            report.chunks_embedded = len(to_add)
            report.chunks_deleted = len(to_delete)
            self._corpus = None
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _embed_and_write(self, chunks: list[Any], root_key: str, progress: bool | None) -> None:
        if not chunks:
            return
        total = sum(len(c.sentences) for c in chunks)
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
                self.store.add(group, per_chunk, root=root_key)
                if bar is not None:
                    bar.update(len(texts))
        finally:
            if bar is not None:
                bar.close()

    # -- ask ------------------------------------------------------------------------------------

    def ask(self, question: str, history: Sequence[Message | str] | None = None, *, k: int | None = None) -> Answer:
        """Answer `question` from the indexed documents, given the conversation so far."""
        started = time.perf_counter()
        question = clean_question(question, limit=self.settings.max_question_chars)
        self._require_index()
        context = follow_up_context(question, history)
        query = f"{context} {question}".strip() if context else question
        t0 = time.perf_counter()
        retrieval = self.retriever.retrieve(query, k or self.settings.top_k)
        t1 = time.perf_counter()
        answer = self.answerer.answer(question, retrieval, self.corpus, context=context)
        t2 = time.perf_counter()
        answer.question = question
        answer.retrieval_query = query
        answer.retrieved = list(retrieval.chunks)
        answer.timings = {
            "retrieve_ms": round((t1 - t0) * 1000, 2),
            "answer_ms": round((t2 - t1) * 1000, 2),
            "total_ms": round((t2 - started) * 1000, 2),
        }
        return answer

    def stream(self, question: str, history: Sequence[Message | str] | None = None, *, k: int | None = None) -> Iterator[str | Answer]:
        """Yield text deltas as the answer is produced, then the final `Answer` as the last item.

        The extractive answerer has its whole text at once, so it yields one delta.
        """
        answer = self.ask(question, history, k=k)
        yield answer.text
        yield answer

    def retrieve(self, question: str, *, k: int | None = None, mode: str = "hybrid") -> list[Any]:
        """Just the ranked chunks, for inspection and evaluation."""
        question = clean_question(question, limit=self.settings.max_question_chars)
        self._require_index()
        return self.retriever.retrieve(question, k or self.settings.top_k, mode=mode).chunks

    def _require_index(self) -> None:
        if self.store.count() == 0:
            raise IndexMissingError(
                f"No index yet in {self.settings.describe_store()}. Run `qa ingest {self.settings.seeds_dir}` first."
            )

    # -- info -----------------------------------------------------------------------------------

    def documents(self) -> list[dict[str, Any]]:
        """Indexed documents with their chunk counts, for the corpus panel."""
        counts: dict[str, dict[str, Any]] = {}
        for chunk in self.corpus.chunks:
            entry = counts.setdefault(chunk.source, {"source": chunk.source, "title": chunk.title, "chunks": 0})
            entry["chunks"] += 1
        return sorted(counts.values(), key=lambda d: d["source"])

    def info(self) -> dict[str, Any]:
        from qa.embed import bundled_model_dir

        embed = {"minilm": "all-MiniLM-L6-v2 (bundled, NumPy)", "minilm-torch": "all-MiniLM-L6-v2 (bundled, torch)"}
        return {
            "store": self.settings.describe_store(),
            "collection": self.settings.collection,
            "chunks": self.store.count(),
            "documents": len(self.documents()) if self.store.count() else 0,
            "embedding_model": embed.get(self.settings.embed_model, f"openai:{self.settings.openai_embed_model}"),
            "model_dir": str(bundled_model_dir()),
            "mode": self.mode,
        }


