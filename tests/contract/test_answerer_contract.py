"""What every answerer must do, run over each one: a new answerer is one class plus an entry in ANSWERERS.

The extractive answerer, the dense baseline, the LLM answerer (the real openai client against the
loopback fake in tests/fake_openai.py) and `Fallback` (an LLM that fails, then the extractive answer)
all answer from the real seed index (MiniLM, Chroma) through the engine's `Search`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the loopback fake servers

from fake_openai import FakeOpenAI, Reply, fake_openai, fake_openai_server  # noqa: E402,F401 - fixtures

from qa import Answer, Engine, Settings  # noqa: E402
from qa.answer import Answerer, Question, Search, fixed_search  # noqa: E402
from qa.answer.baseline import DenseBaseline  # noqa: E402
from qa.answer.extractive import ExtractiveAnswerer  # noqa: E402
from qa.answer.fallback import Fallback  # noqa: E402
from qa.answer.llm import LLMAnswerer  # noqa: E402
from qa.passages import Passages  # noqa: E402
from qa.prompts import NO_ANSWER  # noqa: E402
from qa.types import MARKER, marker_numbers  # noqa: E402

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
JOB = "What is Mark Sedwill's job?"
FOLLOW_UP = "Which country does he work for?"
MODEL_ANSWER = "Mark Sedwill is Britain's national security adviser [1]."


def _llm(fake: FakeOpenAI, data_dir: Path) -> LLMAnswerer:
    settings = Settings(
        _env_file=None, data_dir=data_dir, seeds_dir=SEEDS, llm_base_url=fake.base_url, llm_model="fake-model",
        llm_retries=0, llm_timeout=10.0,
    )
    return LLMAnswerer(settings)


def _working_llm(fake: FakeOpenAI, data_dir: Path) -> Answerer:
    fake.reply(MODEL_ANSWER)
    fake.when("Standalone question", "Which country does Mark Sedwill work for?")
    return _llm(fake, data_dir)


def _failing_llm_with_fallback(fake: FakeOpenAI, data_dir: Path) -> Answerer:
    fake.reply(Reply(status=500, error_message="the model is down"))
    return Fallback(_llm(fake, data_dir), ExtractiveAnswerer())


ANSWERERS: dict[str, Callable[[FakeOpenAI, Path], Answerer]] = {
    "extractive": lambda fake, data: ExtractiveAnswerer(),
    "baseline": lambda fake, data: DenseBaseline(),
    "llm": _working_llm,
    "fallback": _failing_llm_with_fallback,
}


@pytest.fixture(params=list(ANSWERERS))
def answerer(request: pytest.FixtureRequest, fake_openai: FakeOpenAI, seed_data_dir: Path) -> Answerer:  # noqa: F811
    return ANSWERERS[request.param](fake_openai, seed_data_dir)


@pytest.fixture
def searches(shared_seed_engine: Engine) -> tuple[Search, list[tuple[str, str]]]:
    """The engine's search over the seed index, recording every (query, mode) it was called with."""
    inner = shared_seed_engine.search_for(5)
    calls: list[tuple[str, str]] = []

    def search(query: str, *, mode: str = "hybrid") -> Passages:
        calls.append((query, mode))
        return inner(query, mode=mode)

    return search, calls


def _document(engine: Engine, doc_id: str) -> str:
    text = engine.document_text(doc_id)
    assert text is not None, doc_id
    return text


def test_answers_with_citations_quoted_exactly_from_the_document(answerer: Answerer, searches, shared_seed_engine) -> None:  # type: ignore[no-untyped-def]
    search, _ = searches
    answer = answerer.answer(Question(JOB), search)
    assert isinstance(answer, Answer) and not answer.abstained
    assert "national security adviser" in answer.text + " ".join(c.quote for c in answer.citations)
    assert answer.citations, answer.text
    for c in answer.citations:
        assert _document(shared_seed_engine, c.doc_id)[c.start : c.end] == c.quote
        assert c.chunk_id in {chunk.id for chunk in answer.retrieved}


def test_every_marker_names_a_citation_numbered_in_order(answerer: Answerer, searches) -> None:  # type: ignore[no-untyped-def]
    search, _ = searches
    answer = answerer.answer(Question(JOB), search)
    cited = [n for m in MARKER.finditer(answer.text) for n in marker_numbers(m.group(0))]
    assert cited and set(cited) == {c.n for c in answer.citations}
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))


def test_stream_deltas_add_up_to_the_final_answer(answerer: Answerer, searches) -> None:  # type: ignore[no-untyped-def]
    search, _ = searches
    *deltas, final = list(answerer.stream(Question(JOB), search))
    assert isinstance(final, Answer) and deltas and all(isinstance(d, str) for d in deltas)
    assert "".join(deltas) == final.text  # type: ignore[arg-type]
    assert final.text == answerer.answer(Question(JOB), search).text


def test_the_answer_says_what_was_asked_and_retrieved_and_cannot_be_changed(answerer: Answerer, searches) -> None:  # type: ignore[no-untyped-def]
    search, calls = searches
    answer = answerer.answer(Question(JOB), search)
    assert answer.question == JOB
    assert answer.mode in (answerer.mode, "extractive")
    assert (answer.retrieval_query, calls[-1][0]) == (JOB, JOB)
    assert answer.retrieved and len(answer.retrieved) <= 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.text = "something else"  # type: ignore[misc]


def test_a_follow_up_is_retrieved_with_what_it_refers_to(answerer: Answerer, searches) -> None:  # type: ignore[no-untyped-def]
    search, calls = searches
    answer = answerer.answer(Question.of(FOLLOW_UP, [JOB]), search)
    assert answer.question == FOLLOW_UP
    assert "Sedwill" in answer.retrieval_query and answer.retrieval_query == calls[-1][0]
    assert not answer.abstained and "Britain" in " ".join(c.quote for c in answer.citations)


def test_with_nothing_retrieved_it_abstains_without_citations(answerer: Answerer, fake_openai: FakeOpenAI) -> None:  # noqa: F811
    if isinstance(answerer, LLMAnswerer):
        fake_openai.reply(NO_ANSWER)  # what the prompt tells a model to write when no passage answers
    answer = answerer.answer(Question(JOB), fixed_search(Passages(JOB)))
    assert answer.abstained and not answer.citations and answer.text
