"""The offline answerer: quote the sentences most likely to answer, with citations, or abstain.

One fitted score decides both: each sentence of the retrieved passages gets the answerability
model's probability that it answers the question (`qa/answer/features.py`, `qa/answer/model.py`);
the best one is quoted when it clears the fitted threshold, and otherwise the answer is an abstention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qa.answer import ABSTAIN_TEXT
from qa.answer.features import Candidate, Featurizer
from qa.answer.model import Artifact, load_artifact
from qa.retrieve import Corpus, Retrieval
from qa.types import Answer, Citation

# A second sentence comes only from the passage of the first and from the best few: it often
# completes the first, while one from another passage was more often wrong than right.
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
    """Scores every sentence of the retrieved chunks and quotes at most `max_sentences` of them."""

    mode = "extractive"

    def __init__(self, *, max_sentences: int = 2, artifact: Artifact | None = None) -> None:
        self.max_sentences = max_sentences
        self.artifact = artifact if artifact is not None else load_artifact()
        self.featurizer = Featurizer()

    def answer(self, question: str, retrieval: Retrieval, corpus: Corpus, *, context: str = "") -> Answer:
        ranked = self.rank(question, retrieval, corpus, context=context)
        if not ranked.answerable:
            return Answer(
                text=ABSTAIN_TEXT, abstained=True, mode=self.mode, question=question, confidence=round(ranked.score, 4)
            )
        best = ranked.candidates[0]
        chosen = [best]
        for cand in ranked.candidates[1:SECOND_POOL]:
            if len(chosen) >= self.max_sentences:
                break
            if cand.chunk == best.chunk:
                chosen.append(cand)
        # The best sentence leads and is [1]; a second one from its passage follows it.
        parts: list[str] = []
        citations: list[Citation] = []
        for n, cand in enumerate(chosen, start=1):
            citation = corpus.chunks[cand.chunk].cite(n, cand.index, round(cand.score, 4))
            parts.append(f"{citation.quote} [{n}]")
            citations.append(citation)
        return Answer(
            text=" ".join(parts), citations=citations, mode=self.mode, question=question, confidence=round(ranked.score, 4)
        )

    def rank(self, question: str, retrieval: Retrieval, corpus: Corpus, *, context: str = "") -> Ranked:
        """Every candidate sentence with its probability of answering, best first."""
        candidates = self.featurizer.candidates(question, retrieval, corpus, context=context)
        if candidates:
            import numpy as np

            scores = self.artifact.answer.predict(np.stack([c.features for c in candidates]))
            for cand, p in zip(candidates, scores):
                cand.score = float(p)
        candidates.sort(key=lambda c: (-c.score, c.chunk, c.index))
        best = candidates[0].score if candidates else 0.0
        return Ranked(candidates, best, self.artifact.threshold)
