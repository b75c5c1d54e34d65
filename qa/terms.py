"""Terms and their statistics, shared by retrieval and the answerers: the stemmer, BM25 terms, idf.

A low module (it imports only `qa.text`), so answerers use the same term functions as retrieval
without reaching into it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from qa.text import STOPWORDS, words


class WordStemmer(Protocol):
    """What we use of PyStemmer's `Stemmer.Stemmer` (the package ships no types)."""

    def stemWord(self, word: str) -> str: ...

    def stemWords(self, words: list[str]) -> list[str]: ...


def stemmer() -> WordStemmer:
    """An English Snowball stemmer (PyStemmer); not thread-safe, so one per user."""
    import Stemmer

    english: WordStemmer = Stemmer.Stemmer("english")
    return english


def lexical_terms(text: str, stem: WordStemmer) -> list[str]:
    """BM25 terms: words without stop words, stemmed."""
    return list(stem.stemWords([w for w in words(text) if w not in STOPWORDS]))


def idf(n: int, df: int) -> float:
    """BM25's inverse document frequency of a term in `df` of `n` sentences (always > 0)."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


@dataclass(frozen=True)
class TermStats:
    """How common each term is in the indexed sentences: `n` sentences, `doc_freq[term]` of them hold it."""

    n: int
    doc_freq: Mapping[str, int] = field(default_factory=dict)

    def df(self, term: str) -> int:
        return self.doc_freq.get(term, 0)

    def idf(self, term: str) -> float:
        return idf(max(self.n, 1), self.df(term))

    @property
    def max_idf(self) -> float:
        """The idf of a term no sentence holds."""
        return idf(max(self.n, 1), 0)
