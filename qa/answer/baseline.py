"""The baseline `qa eval --baseline` compares against: dense retrieval only, quote the single closest sentence.

It never abstains and uses no fitted model; follow-ups get the same earlier-question context as the
extractive answerer, so a comparison is about answering, not about conversation handling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from qa.answer import Question, Search
from qa.answer.followup import with_context
from qa.types import Answer

BASELINE_MODE = "baseline"


class DenseBaseline:
    """Quotes the one sentence of the top-k passages most similar to the question (MiniLM cosine); never abstains."""

    mode = BASELINE_MODE

    def answer(self, question: Question, search: Search) -> Answer:
        started = time.perf_counter()
        query, _ = with_context(question.text, question.history)
        passages = search(query, mode="dense")
        scored = [(passage, sentence) for passage in passages for sentence in passage.sentences]
        timings = {"retrieve_ms": passages.retrieve_ms}
        if not scored:  # nothing retrieved: the only answer without a sentence to quote
            from qa.answer import ABSTAIN_TEXT

            timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
            return Answer(text=ABSTAIN_TEXT, abstained=True, mode=self.mode, question=question.text, retrieval_query=query, timings=timings)
        passage, best = max(scored, key=lambda pair: pair[1].dense)
        citation = passage.chunk.cite(1, best.index, best.dense)
        timings["total_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return Answer(
            text=f"{citation.quote} [1]", citations=[citation], mode=self.mode, question=question.text,
            retrieval_query=query, retrieved=passages.chunks, timings=timings,
        )

    def stream(self, question: Question, search: Search) -> Iterator[str | Answer]:
        answer = self.answer(question, search)
        yield answer.text
        yield answer
