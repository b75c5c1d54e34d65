"""The offline answerer: quote the sentences most likely to answer, with citations, or abstain.

One fitted score decides both: each sentence of the retrieved passages gets the answerability
model's probability that it answers the question (`qa/answer/features.py`, `qa/answer/model.py`);
the best one is quoted when it clears the fitted threshold, and otherwise the answer is an abstention.
The runner-up is quoted after it unless it scores under a fitted floor, and then a sentence of the best
one's passage among the best few may follow instead: when the best sentence is not the answer, the next
one often is (`make train` reports how often: `answer_coverage_squad_gold_dev_written` in the artifact).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from qa.answer import ABSTAIN_TEXT, Question, Search
from qa.answer.features import FEATURES, Candidate, Featurizer
from qa.answer.followup import with_context
from qa.answer.model import Artifact, load_artifact, require_features
from qa.passages import Passages
from qa.types import Answer, Citation

# Under the runner-up's floor, a second sentence comes only from the best one's passage and from the best
# few: it often completes the first.
SECOND_POOL = 3


@dataclass
class Ranked:
    """Candidates best first, and the question-level answerability score (the best candidate's)."""

    candidates: list[Candidate]
    score: float
    threshold: float
    answerable: bool = field(init=False)

    def __post_init__(self) -> None:
        self.answerable = bool(self.candidates) and self.score >= self.threshold


class ExtractiveAnswerer:
    """Scores every sentence of the retrieved chunks and quotes at most `max_sentences` of them.

    A follow-up ("When did he join?") is retrieved and scored with the earlier questions it leans on
    (`qa/answer/followup.py`); the answer's `retrieval_query` shows them.
    """

    mode = "extractive"

    def __init__(self, *, max_sentences: int = 2, artifact: Artifact | None = None) -> None:
        self.max_sentences = max_sentences
        self.artifact = artifact if artifact is not None else load_artifact()
        require_features(self.artifact.answer, FEATURES)
        self.featurizer = Featurizer()

    def answer(self, question: Question, search: Search) -> Answer:
        started = time.perf_counter()
        query, context = with_context(question.text, question.history)
        passages = search(query)
        t1 = time.perf_counter()
        answer = self.answer_passages(question.text, passages, context=context)
        t2 = time.perf_counter()
        timings = {
            "retrieve_ms": passages.retrieve_ms,
            "answer_ms": round((t2 - t1) * 1000, 2),
            "total_ms": round((t2 - started) * 1000, 2),
        }
        return replace(answer, retrieval_query=query, retrieved=passages.chunks, timings=timings)

    def stream(self, question: Question, search: Search) -> Iterator[str | Answer]:
        """The whole text at once (one delta), then the answer."""
        answer = self.answer(question, search)
        yield answer.text
        yield answer

    def answer_passages(self, question: str, passages: Passages, *, context: str = "") -> Answer:
        """The answer from `passages` already retrieved; `context` = earlier questions the question leans on."""
        ranked = self.rank(question, passages, context=context)
        if not ranked.answerable:
            return Answer(
                text=ABSTAIN_TEXT, abstained=True, mode=self.mode, question=question, confidence=round(ranked.score, 4),
                retrieval_query=passages.query, retrieved=passages.chunks,
            )
        # The best sentence leads and is [1]; the runners-up follow while they clear the fitted floor, or else
        # one from the best sentence's passage among the best few.
        best = ranked.candidates[0]
        chosen = [best]
        for cand in ranked.candidates[1 : self.max_sentences]:
            if cand.score < self.artifact.second_floor:
                break
            chosen.append(cand)
        if len(chosen) == 1 and self.max_sentences > 1:
            chosen += [c for c in ranked.candidates[1:SECOND_POOL] if c.chunk == best.chunk][:1]
        parts: list[str] = []
        citations: list[Citation] = []
        for n, cand in enumerate(chosen, start=1):
            citation = passages[cand.chunk].chunk.cite(n, cand.index, round(cand.score, 4))
            parts.append(f"{citation.quote} [{n}]")
            citations.append(citation)
        return Answer(
            text=" ".join(parts), citations=citations, mode=self.mode, question=question, confidence=round(ranked.score, 4),
            retrieval_query=passages.query, retrieved=passages.chunks,
        )

    def rank(self, question: str, passages: Passages, *, context: str = "") -> Ranked:
        """Every candidate sentence with its probability of answering, best first."""
        candidates = self.featurizer.candidates(question, passages, context=context)
        if candidates:
            import numpy as np

            scores = self.artifact.answer.predict(np.stack([c.features for c in candidates]))
            for cand, p in zip(candidates, scores):
                cand.score = float(p)
        candidates.sort(key=lambda c: (-c.score, c.chunk, c.index))
        best = candidates[0].score if candidates else 0.0
        return Ranked(candidates, best, self.artifact.threshold)
