"""Sentence-level grounding of LLM answers and the per-answer deadline, against the loopback OpenAI fake."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SEEDS
from fake_openai import FakeOpenAI, Reply, fake_openai, fake_openai_server  # noqa: F401 - fixtures

from qa import Answer, Engine, Settings
from qa.answer.llm import check_sentences, key_terms, missing_terms
from qa.cli import main
from qa.slack_render import answer_blocks
from qa.types import Citation, UnsupportedSentence
from qa.ui_render import render_answer

QUESTION = "How many US diplomats will Russia expel?"


@pytest.fixture
def make_engine(seed_data_dir: Path, fake_openai: FakeOpenAI) -> Callable[..., Engine]:  # noqa: F811
    def make(**overrides: object) -> Engine:
        values: dict[str, object] = {
            "data_dir": seed_data_dir,
            "seeds_dir": SEEDS,
            "llm_base_url": fake_openai.base_url,
            "llm_model": "fake-model",
            "llm_retries": 0,
            "llm_timeout": 10.0,
        }
        values.update(overrides)
        return Engine(Settings(_env_file=None, **values))  # type: ignore[arg-type]

    return make


def first_passage(engine: Engine, fake: FakeOpenAI, paragraph: int = 1) -> int:
    """The [n] the prompt gives the passage from `paragraph` for QUESTION."""
    fake.reply("Probe [1].")
    probe = engine.ask(QUESTION)
    return next(i for i, c in enumerate(probe.retrieved, start=1) if c.paragraph == paragraph)


def flags(answer: Answer) -> list[tuple[str, str]]:
    for u in answer.unsupported_sentences:
        assert answer.text[u.start : u.end] == u.text
    return [(u.text, u.reason) for u in answer.unsupported_sentences]


# -- which sentences are flagged ----------------------------------------------------------------


def test_a_sentence_whose_only_marker_named_no_passage_is_flagged_not_silently_uncited(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine()
    n = first_passage(engine, fake_openai)
    fake_openai.reply(f"Russia will expel 60 US diplomats [{n}]. The expulsions start next month [7].")
    answer = engine.ask(QUESTION)
    assert answer.text == "Russia will expel 60 US diplomats [1]. The expulsions start next month."
    assert flags(answer) == [("The expulsions start next month.", "invalid_citation")]
    assert answer.grounded  # one claim of two: flagged, not the whole answer


def test_an_uncited_sentence_is_flagged(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine()
    n = first_passage(engine, fake_openai)
    fake_openai.reply(f"Russia will expel 60 US diplomats [{n}]. This is the largest expulsion in history.")
    answer = engine.ask(QUESTION)
    assert flags(answer) == [("This is the largest expulsion in history.", "uncited")]


def test_a_cited_sentence_with_a_number_its_passage_lacks_is_flagged_and_ungrounded(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine()
    n = first_passage(engine, fake_openai)
    fake_openai.reply(f"Russia will expel 80 US diplomats [{n}].")
    answer = engine.ask(QUESTION)
    assert flags(answer) == [("Russia will expel 80 US diplomats [1].", "not_in_source")]
    assert answer.unsupported_sentences[0].missing == ("80",)
    assert answer.citations and answer.grounded is False


def test_a_cited_sentence_with_a_name_its_passage_lacks_is_flagged(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine()
    n = first_passage(engine, fake_openai)
    fake_openai.reply(f"Russia will expel 60 US diplomats [{n}]. Vladimir Putin ordered 60 US diplomats out [{n}].")
    answer = engine.ask(QUESTION)
    assert [(u.reason, u.missing) for u in answer.unsupported_sentences] == [("not_in_source", ("Vladimir", "Putin"))]


def test_mostly_uncited_answer_is_ungrounded(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine()
    n = first_passage(engine, fake_openai)
    fake_openai.reply(f"Russia will expel 60 US diplomats [{n}]. The move surprised everyone. Talks will follow soon.")
    answer = engine.ask(QUESTION)
    assert [reason for _, reason in flags(answer)] == ["uncited", "uncited"]
    assert answer.grounded is False and answer.citations


def test_a_marker_written_after_the_full_stop_still_cites_its_sentence(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine()
    n = first_passage(engine, fake_openai)
    fake_openai.reply(f"Russia will expel 60 US diplomats. [{n}] It is retaliation. [{n}]")
    answer = engine.ask(QUESTION)
    assert answer.unsupported_sentences == [] and answer.grounded


def test_streamed_answer_carries_the_same_flags_with_offsets_into_its_text(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine()
    n = first_passage(engine, fake_openai)
    fake_openai.reply(Reply(text=f"Russia will expel 60 US diplomats [{n}]. Nobody knows why [9].", chunk_chars=3))
    *deltas, final = list(engine.stream(QUESTION))
    assert isinstance(final, Answer) and "".join(deltas) == final.text  # type: ignore[arg-type]
    assert flags(final) == [("Nobody knows why.", "invalid_citation")]


def test_abstention_and_extractive_answers_carry_no_flags(make_engine, fake_openai, shared_seed_engine) -> None:  # noqa: F811
    fake_openai.reply("The documents don't cover this.")
    assert make_engine().ask("What is the capital of Australia?").unsupported_sentences == []
    assert shared_seed_engine.ask(QUESTION).unsupported_sentences == []


def test_key_terms_are_numbers_and_names_not_sentence_openers() -> None:
    assert key_terms("However, Russia will expel 60 US diplomats [1].") == ["60", "Russia", "US"]
    assert key_terms("The move, said Theresa May's office, came on 26 March 2018 [2].") == ["26", "2018", "Theresa", "May", "March"]
    assert missing_terms("Britain's adviser called it a western message.", ["Britain’s national security adviser"]) == []
    assert missing_terms("The Russian embassy had 1,000 staff.", ["Russia’s embassy had 1000 staff"]) == []
    assert missing_terms("It cost 2.5 million euros in Paris.", ["It cost 25 million euros in Berlin."]) == ["2.5", "Paris"]


def test_check_sentences_counts_the_claims_it_checks() -> None:
    cite = Citation(n=1, source="a.txt", title="a", paragraph=1, start=0, end=10, quote="Alpha is 5.", score=1.0, passage="Alpha is 5.")
    flagged, claims = check_sentences("Alpha is 5 [1]. Beta is 6.", [cite])
    assert claims == 2
    assert [(u.text, u.reason) for u in flagged] == [("Beta is 6.", "uncited")]


# -- how the flags are shown ---------------------------------------------------------------------


def flagged_answer() -> Answer:
    text = "Russia will expel 60 diplomats [1]. It <b>ends</b> Monday."
    start = text.index("It <b>")
    cite = Citation(n=1, source="a.txt", title="a", paragraph=1, start=0, end=9, quote="Russia will expel 60 diplomats.", score=1.0, passage="Russia will expel 60 diplomats.")
    return Answer(
        text=text, citations=[cite], mode="llm:m", grounded=True,
        unsupported_sentences=[UnsupportedSentence(start, len(text), text[start:], "uncited")],
    )  # fmt: skip


def test_chat_page_underlines_flagged_sentences_and_lists_why_as_text() -> None:
    page = render_answer(flagged_answer())
    assert '<span class="qa-unsupported" title="no citation">It &lt;b&gt;ends&lt;/b&gt; Monday.</span>' in page
    assert "⚠ 1 sentence not backed by a source" in page
    assert "Not backed by a source:<ul><li>“It &lt;b&gt;ends&lt;/b&gt; Monday.” " in page
    assert "<b>ends" not in page and '<span class="qa-ref">[1]</span>' in page


def test_slack_lists_flagged_sentences_escaped() -> None:
    notes = [e["text"] for b in answer_blocks(flagged_answer()) if b["type"] == "context" for e in b["elements"]]
    assert any(n == ":warning: *Not backed by a source* (no citation): “It &lt;b&gt;ends&lt;/b&gt; Monday.”" for n in notes), notes


def test_answer_json_lists_flagged_sentences() -> None:
    data = flagged_answer().to_dict()
    assert data["unsupported_sentences"] == [
        {"start": 36, "end": 58, "text": "It <b>ends</b> Monday.", "reason": "uncited", "missing": []}
    ]


@pytest.fixture
def cli_env(seed_data_dir: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI) -> FakeOpenAI:  # noqa: F811
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    monkeypatch.setenv("QA_LLM_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("QA_LLM_MODEL", "fake-model")
    monkeypatch.setenv("QA_LLM_RETRIES", "0")
    return fake_openai


def test_cli_prints_each_flagged_sentence_with_its_reason(cli_env: FakeOpenAI) -> None:
    cli_env.reply("Mark Sedwill is Britain's national security adviser [1]. He was born in Paris [4].")
    result = CliRunner().invoke(main, ["ask", "What is Mark Sedwill's job?"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Mark Sedwill is Britain's national security adviser [1]. He was born in Paris [2]."
    assert lines[1].startswith("  ⚠ not backed by a source (not in the cited source: Paris): “He was born in Paris [2].”"), lines


# -- the per-answer deadline ---------------------------------------------------------------------


def test_a_stream_that_never_ends_gets_the_extractive_answer_at_the_deadline(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine(llm_deadline=1.0, llm_timeout=10.0)
    fake_openai.reply("Warm [1].")
    engine.ask(QUESTION)  # llama-index imported, corpus read: the deadline below is the model's alone
    fake_openai.reply(Reply(text="Russia will expel [1] ", endless=True, chunk_chars=4, chunk_delay=0.05))
    started = time.monotonic()
    *deltas, final = list(engine.stream(QUESTION))
    took = time.monotonic() - started
    assert isinstance(final, Answer) and final.mode == "extractive" and deltas
    assert final.notice and "QA_LLM_DEADLINE" in final.notice and "stopped mid-answer" in final.notice
    assert "60 US diplomats" in final.text and final.citations
    assert took < 1.0 + 1.5, took
    deadline_at = started + 1.0
    for _ in range(50):  # the request's thread hangs up at its next read
        if fake_openai.hangups:
            break
        time.sleep(0.1)
    assert fake_openai.hangups and fake_openai.hangups[0] - deadline_at < 2.0


def test_a_reply_trickled_forever_gets_the_extractive_answer_at_the_deadline(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine(llm_deadline=1.0, llm_timeout=10.0)
    fake_openai.reply("Warm [1].")
    engine.ask(QUESTION)  # llama-index imported, corpus read: the deadline below is the model's alone
    fake_openai.reply(Reply(endless=True, chunk_delay=0.2))  # `ask` is not streamed: a JSON body that never ends
    started = time.monotonic()
    answer = engine.ask(QUESTION)
    took = time.monotonic() - started
    assert answer.mode == "extractive" and answer.notice and "within 1s (QA_LLM_DEADLINE)" in answer.notice
    assert took < 1.0 + 1.5, took
    for _ in range(50):
        if fake_openai.hangups:
            break
        time.sleep(0.1)
    assert fake_openai.hangups, "the request kept reading after the deadline"


def test_cli_ask_returns_at_the_deadline_with_the_notice(cli_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_LLM_DEADLINE", "1")
    cli_env.reply(Reply(endless=True, chunk_delay=0.2))
    result = CliRunner().invoke(main, ["ask", "--json", QUESTION])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["mode"] == "extractive" and "QA_LLM_DEADLINE" in data["notice"] and "60 US diplomats" in data["text"]


def test_a_bad_deadline_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_LLM_DEADLINE", "0")
    result = CliRunner().invoke(main, ["ask", QUESTION])
    assert result.exit_code == 1 and result.output.startswith("Error: Bad setting QA_LLM_DEADLINE")


def test_a_silent_server_past_the_deadline_is_reported_as_the_deadline_not_the_read_timeout(make_engine, fake_openai) -> None:  # noqa: F811
    engine = make_engine(llm_deadline=1.0, llm_timeout=30.0)
    fake_openai.reply("Warm [1].")
    engine.ask(QUESTION)
    fake_openai.reply(Reply(text="Too late [1].", delay=5.0))
    started = time.monotonic()
    answer = engine.ask(QUESTION)
    assert time.monotonic() - started < 1.0 + 1.5
    assert answer.mode == "extractive" and answer.notice and "within 1s (QA_LLM_DEADLINE)" in answer.notice, answer.notice
