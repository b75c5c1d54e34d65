"""The engine is retrieve -> answer: any answerer plugs in, and answerers need nothing from retrieval's internals."""

from __future__ import annotations

import subprocess
import sys

from conftest import SEEDS

from qa import Answer, Engine, Settings
from qa.answer import Question
from qa.answer.baseline import DenseBaseline
from qa.answer.extractive import ExtractiveAnswerer
from qa.types import MARKER, strip_markers

JOB = "What is Mark Sedwill's job?"


def test_an_injected_answerer_answers_asked_and_streamed_questions(seed_data_dir) -> None:  # type: ignore[no-untyped-def]
    engine = Engine(Settings(_env_file=None, data_dir=seed_data_dir, seeds_dir=SEEDS), answerer=DenseBaseline())
    answer = engine.ask(f"  {JOB}\x07 ")
    assert (answer.mode, engine.mode, answer.question) == ("baseline", "baseline", JOB)
    assert answer.citations and answer.text == f"{answer.citations[0].quote} [1]"
    *deltas, final = list(engine.stream(JOB))
    assert isinstance(final, Answer) and "".join(deltas) == final.text == answer.text  # type: ignore[arg-type]


def test_engine_answers_are_the_extractive_answerers_answers(shared_seed_engine) -> None:  # type: ignore[no-untyped-def]
    history = ["Which countries expelled Russian diplomats?"]
    via_engine = shared_seed_engine.ask("How many did the US expel?", history)
    direct = ExtractiveAnswerer().answer(Question.of("How many did the US expel?", history), shared_seed_engine.search_for(5))
    assert (via_engine.text, via_engine.citations, via_engine.retrieval_query) == (direct.text, direct.citations, direct.retrieval_query)
    assert via_engine.retrieval_query.startswith(history[0])


def test_answerers_load_without_the_retriever() -> None:
    code = (
        "import sys, qa.answer.extractive, qa.answer.llm, qa.answer.baseline, qa.answer.fallback; "
        "print(sorted(m for m in sys.modules if m in ('qa.retrieve', 'qa.store', 'bm25s', 'chromadb')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_one_marker_pattern_finds_and_strips_what_answers_contain() -> None:
    text = "Sixty diplomats [1]. Later [2, 3] and [ 4 ]; not a year (2018) or a link [docs](x)."
    assert [m.group(0) for m in MARKER.finditer(text)] == ["[1]", "[2, 3]", "[ 4 ]"]
    assert strip_markers(text) == "Sixty diplomats. Later and; not a year (2018) or a link [docs](x)."


def test_api_markdown_keeps_every_marker_live_however_the_stream_splits_it() -> None:
    from qa.api import MarkdownStream, escape_markdown

    text = "Sixty diplomats [1, 2] and *more* [3]; not [this](http://x)."
    whole = escape_markdown(text)
    assert whole == r"Sixty diplomats [1, 2] and \*more\* [3]; not \[this\]\(http://x\)."
    for cut in range(1, len(text)):
        stream = MarkdownStream()
        assert stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.flush() == whole, cut
