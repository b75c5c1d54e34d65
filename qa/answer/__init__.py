"""Answerers turn a question and the passages retrieved for it into an `Answer`; each returns the same type.

An answerer is one class with `mode`, `answer(question, search)` and `stream(question, search)`.
`search` is the engine's retriever for this question: the answerer decides what to retrieve with
(the question, the question with the earlier ones it leans on, or a standalone question an LLM
wrote) and gets self-contained `Passages` back. `tests/contract/test_answerer_contract.py` holds
what every answerer must do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from qa.passages import Passages
    from qa.types import Answer

ABSTAIN_TEXT = "The documents don't say. Nothing in the indexed documents answers this question."

Message = Mapping[str, str]


@dataclass(frozen=True)
class Question:
    """A cleaned question and the conversation before it (OpenAI/Gradio-style messages or plain user turns)."""

    text: str
    history: tuple[Message | str, ...] = ()

    @classmethod
    def of(cls, text: str, history: Sequence[Message | str] | None = None) -> Question:
        return cls(text, tuple(history or ()))


class Search(Protocol):
    """The retriever bound to one question: `query` -> the top passages (`mode`: hybrid, dense or bm25)."""

    def __call__(self, query: str, *, mode: str = "hybrid") -> Passages: ...


class Answerer(Protocol):
    """Answers a question from the passages it retrieves through `search`; never mutates an `Answer` it returned."""

    mode: str

    def answer(self, question: Question, search: Search) -> Answer: ...

    def stream(self, question: Question, search: Search) -> Iterator[str | Answer]:
        """Text deltas as the answer is written, then the final `Answer` (the deltas add up to its text)."""
        ...


@dataclass
class Attempt:
    """What an answerer did before it failed (the prompts sent, the timings so far), shown with a fallback answer."""

    prompts: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def record_attempt(exc: BaseException, attempt: Attempt) -> None:
    """Keep `attempt` on the exception that ended it, for `Fallback` to show."""
    exc.qa_attempt = attempt  # type: ignore[attr-defined]


def attempt_of(exc: BaseException) -> Attempt:
    found = getattr(exc, "qa_attempt", None)
    return found if isinstance(found, Attempt) else Attempt()


def fixed_search(passages: Passages) -> Search:
    """A `Search` that returns `passages` whatever the query (for answering given passages, and for tests)."""

    def search(query: str, *, mode: str = "hybrid") -> Passages:
        return passages

    return search
