"""Answerers turn a question and retrieved passages into an `Answer`; each returns the same type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from qa.retrieve import Corpus, Retrieval
    from qa.types import Answer

ABSTAIN_TEXT = "The documents don't say. Nothing in the indexed documents answers this question."


class Answerer(Protocol):
    def answer(self, question: str, retrieval: Retrieval, corpus: Corpus, *, context: str = "") -> Answer: ...
