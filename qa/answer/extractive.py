"""The offline answerer: quote the best supporting sentences verbatim, with citations, or abstain."""

from __future__ import annotations

import math
from dataclasses import dataclass

from qa.answer import ABSTAIN_TEXT
from qa.answer.qtype import Wanted, negates, wanted
from qa.retrieve import Corpus, Retrieval, lexical_terms, _stemmer
from qa.text import words
from qa.types import Answer, Citation

# Weights and thresholds, tuned on eval/gold.jsonl and the SQuAD slice (see README, Quality).
W_DENSE = 1.0
W_COVERAGE = 0.6
W_TYPE = 0.15
ABSTAIN_DENSE = 0.35
ABSTAIN_COVERAGE = 0.5
SECOND_RATIO = 0.0
SECOND_POOL = 3
W_NOVEL = 0.2
W_CHUNK = 0.2
STRICT_TYPES = ("name", "number", "date", "place")
TYPED_POOL = 2
TYPED_MARGIN = 0.85


@dataclass
class Candidate:
    chunk: int
    index: int
    score: float
    dense: float
    coverage: float
    typed: bool
    negates: bool
    repeats_numbers: bool


class ExtractiveAnswerer:
    """Scores every sentence of the retrieved chunks and quotes at most `max_sentences` of them."""

    mode = "extractive"

    def __init__(self, *, max_sentences: int = 2) -> None:
        self.max_sentences = max_sentences
        self.stemmer = _stemmer()

    def answer(self, question: str, retrieval: Retrieval, corpus: Corpus, *, context: str = "") -> Answer:
        candidates = self.rank(question, retrieval, corpus, context=context)
        best = self._pick(wanted(question), candidates)
        if best is None:
            return Answer(text=ABSTAIN_TEXT, abstained=True, mode=self.mode, question=question)
        chosen = [best]
        # A second sentence comes only from the passage of the first: it often completes it, while
        # one from another passage was wrong more often than right (SQuAD slice: citation
        # precision 0.83 vs 0.74, answer containment 0.75 vs 0.78).
        for cand in candidates[:SECOND_POOL]:
            if cand is best or len(chosen) >= self.max_sentences:
                continue
            if cand.chunk == best.chunk and cand.score >= SECOND_RATIO * best.score and cand.coverage > 0:
                chosen.append(cand)
        chosen.sort(key=lambda c: (retrieval.chunks.index(corpus.chunks[c.chunk]), c.index))
        parts: list[str] = []
        citations: list[Citation] = []
        for n, cand in enumerate(chosen, start=1):
            citation = corpus.chunks[cand.chunk].cite(n, cand.index, cand.score)
            parts.append(f"{citation.quote} [{n}]")
            citations.append(citation)
        return Answer(text=" ".join(parts), citations=citations, mode=self.mode, question=question)

    def rank(self, question: str, retrieval: Retrieval, corpus: Corpus, *, context: str = "") -> list[Candidate]:
        want = wanted(question)
        q_words = set(words(question)) | set(words(context))
        terms = self._weighted_terms(question, context, corpus)
        total = sum(terms.values()) or 1.0
        chunk_rank = {corpus.position[c.id]: r for r, c in enumerate(retrieval.chunks)}
        chunk_score = {corpus.position[c.id]: s for c, s in zip(retrieval.chunks, retrieval.chunk_scores)}
        top_chunk = max(retrieval.chunk_scores, default=1.0) or 1.0
        question_terms = set(lexical_terms(question, self.stemmer))
        out: list[Candidate] = []
        for (ci, si), s in retrieval.sentences.items():
            chunk = corpus.chunks[ci]
            text = chunk.sentence_texts()[si]
            present = corpus.sentence_terms[corpus.sentence_row(ci, si)]
            coverage = sum(w for t, w in terms.items() if t in present) / total
            typed = want.found_in(text, q_words)
            # Novelty: an answer says something the question doesn't; a restatement has nothing new.
            novelty = len(present - question_terms) / max(len(present), 1)
            score = (
                W_DENSE * s.dense
                + W_COVERAGE * coverage
                + W_TYPE * typed
                + W_NOVEL * novelty
                + W_CHUNK * chunk_score.get(ci, 0.0) / top_chunk
            )
            out.append(Candidate(ci, si, score, s.dense, coverage, typed, negates(text), want.repeats_numbers(text)))
        out.sort(key=lambda c: -c.score)
        return out

    def _weighted_terms(self, question: str, context: str, corpus: Corpus) -> dict[str, float]:
        n = max(len(corpus.sentence_owner), 1)
        weights: dict[str, float] = {}
        for text, factor in ((question, 1.0), (context, 0.5)):
            for term in lexical_terms(text, self.stemmer):
                df = corpus.doc_freq.get(term, 0)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                weights[term] = max(weights.get(term, 0.0), factor * idf)
        return weights

    @staticmethod
    def _pick(want: Wanted, candidates: list[Candidate]) -> Candidate | None:
        """The sentence to quote first, or None to abstain.

        Questions that want a name, number, date or place need a sentence holding one the
        question doesn't already state; others need enough meaning or key-term overlap. A
        question asking what is not so needs a sentence that says something is not so, and the
        sentence must repeat any number the question states.
        """
        if not candidates:
            return None
        best = candidates[0]
        if want.kind in STRICT_TYPES:
            typed = [c for c in candidates[:TYPED_POOL] if c.typed]
            if not typed or typed[0].score < TYPED_MARGIN * best.score:
                return None
            best = typed[0]
        if best.dense < ABSTAIN_DENSE and best.coverage < ABSTAIN_COVERAGE:
            return None
        if want.negated and not best.negates:
            return None
        if not best.repeats_numbers:  # SQuAD 2.0's "entity swap": the question's year or amount is changed
            return None
        return best
