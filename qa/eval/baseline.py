"""The baseline `qa eval --baseline` runs through the same harness: the single sentence closest by dense similarity."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qa.errors import IndexMissingError

if TYPE_CHECKING:
    from qa.engine import Engine
    from qa.types import Answer

BASELINE_MODE = "baseline"  # dense-only, top-1 sentence


class DenseBaseline:
    """The baseline: quotes the single sentence closest to the question by dense similarity; never abstains."""

    mode = BASELINE_MODE

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ask(self, question: str, history: Sequence[Any] | None = None, *, k: int | None = None) -> Answer:
        from qa.engine import clean_question, follow_up_context
        from qa.types import Answer, Citation

        settings = self.engine.settings
        started = time.perf_counter()
        question = clean_question(question, limit=settings.max_question_chars)
        retriever = self.engine.retriever  # one retriever, one corpus snapshot for the whole question
        corpus = retriever.corpus
        if len(corpus) == 0:
            raise IndexMissingError(f"No index yet in {settings.describe_store()}. Run `qa ingest {settings.seeds_dir}` first.")
        # Follow-ups get the same earlier-question context as the engine, so the comparison is about answering.
        context = follow_up_context(question, history)
        query = f"{context} {question}".strip() if context else question
        retrieval = retriever.retrieve(query, k or settings.top_k, mode="dense")
        # The top-ranked chunk holds the best dense sentence; `sentences` scores every sentence of the top k.
        (ci, si), best = max(retrieval.sentences.items(), key=lambda kv: kv[1].dense)
        chunk = corpus.chunks[ci]
        sentence = chunk.sentences[si]
        quote = chunk.text[sentence.start - chunk.start : sentence.end - chunk.start]
        citation = Citation(
            n=1, source=chunk.source, title=chunk.title, paragraph=chunk.paragraph, start=sentence.start,
            end=sentence.end, quote=quote, score=round(best.dense, 4), chunk_id=chunk.id, passage=chunk.text,
        )
        total = round((time.perf_counter() - started) * 1000, 2)
        return Answer(
            text=f"{quote} [1]", citations=[citation], mode=self.mode, question=question, retrieval_query=query,
            retrieved=list(retrieval.chunks), timings={"total_ms": total},
        )
