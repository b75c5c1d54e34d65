"""What an answerer is given: the retrieved passages, each sentence with its scores and terms, and term statistics.

The retriever builds `Passages`; they are self-contained, so an answerer needs nothing else from
retrieval or the index to quote, score or cite (`Chunk.cite` gives exact offsets).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from qa.terms import TermStats
from qa.types import Chunk


@dataclass(frozen=True)
class ScoredSentence:
    """Sentence `index` of a passage: its text, BM25 terms and retrieval scores for the query."""

    index: int
    text: str
    terms: frozenset[str]
    dense: float  # cosine of query and sentence
    bm25: float
    fused: float = 0.0  # its reciprocal-rank-fusion score (0 if neither ranking listed it)


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk, its fused score, and every one of its sentences scored."""

    chunk: Chunk
    score: float
    sentences: tuple[ScoredSentence, ...] = ()


@dataclass(frozen=True)
class Passages(Sequence[Passage]):
    """The passages retrieved for `query`, best first, with the term statistics of the index they came from."""

    query: str
    items: tuple[Passage, ...] = ()
    stats: TermStats = field(default_factory=lambda: TermStats(0))
    bm25_max: float = 0.0  # the best BM25 score of any sentence in the index for the query
    retrieve_ms: float = 0.0

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, i: int) -> Passage: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Passage]: ...

    def __getitem__(self, i: int | slice) -> Passage | Sequence[Passage]:
        return self.items[i]

    def __iter__(self) -> Iterator[Passage]:
        return iter(self.items)

    @property
    def chunks(self) -> list[Chunk]:
        return [p.chunk for p in self.items]
