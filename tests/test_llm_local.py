"""LLM mode against a real model server: llama.cpp's OpenAI-compatible server with the bundled SmolLM2-135M.

Run by `make test-llm` (marker `llm_local`), which first builds and installs the server (`make llm-local`);
`make test` leaves these out. The model is small and weak: it writes uncited sentences, wrong numbers and
stray markers, so these tests assert what must hold for *any* reply (citations quote the source exactly,
every `[n]` names a citation, every sentence is cited or flagged), never the model's wording.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOLD, SEED_FILE, SEEDS

from qa import Answer, Engine, Settings
from qa.answer.llm import _units
from qa.cli import main
from qa.local_llm import MODEL_ALIAS, LocalServer, model_path
from qa.prompts import TEMPLATES

pytestmark = [pytest.mark.llm_local, pytest.mark.integration, pytest.mark.slow]

SEED_TEXT = SEED_FILE.read_text(encoding="utf-8")
PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
QUESTION = "How many US diplomats will Russia expel?"


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    log = tmp_path_factory.mktemp("llm") / "server.log"
    with LocalServer(threads=2, log=log) as server:
        yield server


@pytest.fixture
def make_engine(seed_data_dir: Path, local_server: LocalServer) -> Callable[..., Engine]:
    def make(**overrides: object) -> Engine:
        values: dict[str, object] = {
            "data_dir": seed_data_dir,
            "seeds_dir": SEEDS,
            "llm_base_url": local_server.base_url,
            "llm_model": MODEL_ALIAS,
            "llm_retries": 0,
            "llm_timeout": 60.0,
            "llm_deadline": 120.0,
        }
        values.update(overrides)
        return Engine(Settings(_env_file=None, **values))  # type: ignore[arg-type]

    return make


def assert_checked(answer: Answer) -> None:
    """What must hold for any model reply: exact quotes, markers that name citations, each sentence cited or flagged."""
    assert answer.mode == f"llm:{MODEL_ALIAS}" and not answer.notice, answer.notice
    assert answer.text.strip()
    for c in answer.citations:
        assert SEED_TEXT[c.start : c.end] == c.quote and c.quote in c.passage
    numbers = {int(n) for marker in re.findall(r"\[(\d+(?:, \d+)*)\]", answer.text) for n in marker.split(", ")}
    assert numbers == {c.n for c in answer.citations}
    flagged = {(u.start, u.end) for u in answer.unsupported_sentences}
    for u in answer.unsupported_sentences:
        assert answer.text[u.start : u.end] == u.text
    if not answer.abstained:
        for start, end in _units(answer.text):
            sentence = answer.text[start:end]
            if any(ch.isalnum() for ch in re.sub(r"\[[\d, ]+\]", "", sentence)):
                assert re.search(r"\[\d", sentence) or (start, end) in flagged, sentence


def test_the_model_file_is_the_one_whose_sha256_we_pinned() -> None:
    assert model_path().stat().st_size > 50_000_000


def test_non_streaming_answer_from_the_real_server_is_checked(make_engine) -> None:
    answer = make_engine().ask(QUESTION)
    assert_checked(answer)
    assert answer.timings["llm_ms"] > 0 and answer.retrieved


def test_streaming_answer_deltas_add_up_to_the_final_text(make_engine) -> None:
    *deltas, final = list(make_engine().stream(QUESTION))
    assert isinstance(final, Answer) and deltas
    assert_checked(final)
    assert "".join(deltas) == final.text  # type: ignore[arg-type]
    assert final.timings["first_token_ms"] < final.timings["llm_ms"] + final.timings["pipeline_ms"]


def test_follow_up_is_condensed_by_the_real_model_before_retrieval(make_engine) -> None:
    engine = make_engine()
    history = [{"role": "user", "content": "Who is Mark Sedwill?"}, {"role": "assistant", "content": "Britain's national security adviser."}]
    answer = engine.ask("How did he sum it up?", history=history)
    assert_checked(answer)
    assert "condense" in answer.prompts and answer.timings["condense_ms"] > 0
    query = answer.retrieval_query
    assert query and "\n" not in query and len(query) <= engine.settings.max_question_chars


def test_markers_the_real_model_invents_are_removed_and_their_sentences_flagged(make_engine, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for name in TEMPLATES:
        (prompts / name).write_text((PROMPTS / name).read_text(encoding="utf-8"), encoding="utf-8")
    answer_md = prompts / "answer.md"
    answer_md.write_text(
        answer_md.read_text(encoding="utf-8")
        + "\n\nThere are 30 passages. Cite passage [17] and passage [23] in your answer.",  # there are 2
        encoding="utf-8",
    )
    engine = make_engine(prompts_dir=prompts, top_k=2)
    seen_flag = False
    for question in (QUESTION, "Who is Mark Sedwill?", "What did Theresa May say?", "Which countries expelled diplomats?"):
        answer = engine.ask(question)
        assert "[17]" not in answer.text and "[23]" not in answer.text and all(c.n <= 2 for c in answer.citations)
        assert_checked(answer)
        seen_flag |= any(u.reason == "invalid_citation" for u in answer.unsupported_sentences)
    assert seen_flag, "the model never wrote [17] or [23]: the prompt no longer provokes it"


def test_server_stopped_mid_stream_ends_with_the_extractive_answer(seed_data_dir: Path, tmp_path: Path) -> None:
    with LocalServer(threads=1, log=tmp_path / "server.log") as server:
        engine = Engine(Settings(
            _env_file=None, data_dir=seed_data_dir, seeds_dir=SEEDS, llm_base_url=server.base_url, llm_model=MODEL_ALIAS,
            llm_retries=0, llm_timeout=20.0, llm_deadline=60.0,
        ))  # fmt: skip
        items: list[object] = []
        for item in engine.stream("Summarise everything the documents say about the diplomats, in detail."):
            items.append(item)
            if len(items) == 1:
                assert server.process is not None
                server.process.kill()  # the first delta has arrived: the server dies mid-stream
    final = items[-1]
    assert isinstance(final, Answer) and len(items) >= 2
    assert final.mode == "extractive" and final.notice
    assert "stopped mid-answer" in final.notice, final.notice


def test_a_stopped_server_gives_the_fallback_notice(seed_data_dir: Path, tmp_path: Path) -> None:
    server = LocalServer(threads=1, log=tmp_path / "server.log").start()
    url = server.base_url
    server.stop()
    engine = Engine(Settings(
        _env_file=None, data_dir=seed_data_dir, seeds_dir=SEEDS, llm_base_url=url, llm_model=MODEL_ALIAS, llm_retries=0,
    ))  # fmt: skip
    answer = engine.ask(QUESTION)
    assert answer.mode == "extractive" and "60 US diplomats" in answer.text
    assert answer.notice == f"The language model is unavailable (can't reach {url}); showing the extractive answer."


def test_an_answer_past_the_deadline_is_the_extractive_one(make_engine) -> None:
    engine = make_engine(llm_deadline=0.3)
    started = time.monotonic()
    answer = engine.ask("Summarise everything the documents say about the diplomats, in detail.")
    assert time.monotonic() - started < 0.3 + 3.0  # + importing llama-index on the first call
    assert answer.mode == "extractive" and answer.notice and "QA_LLM_DEADLINE" in answer.notice


def test_chat_page_streams_a_real_model_answer_with_its_flags_shown(seed_data_dir: Path, local_server: LocalServer, tmp_path: Path) -> None:
    from gradio_client import Client
    from ui_server import seed_settings, served

    settings = seed_settings(tmp_path, seed_data_dir, llm_base_url=local_server.base_url, llm_model=MODEL_ALIAS, llm_timeout=60.0)
    with served(Engine(settings)) as (_, url):
        job = Client(url, verbose=False).submit(QUESTION, api_name="/chat")
        _, messages, answer = job.result(timeout=180)
    partial = [out[1] for out in job.outputs() if out[2] is None and out[1]]
    html = "".join(part["text"] for part in messages[-1]["content"] if part.get("type") == "text")
    assert answer["mode"] == f"llm:{MODEL_ALIAS}" and not answer["notice"] and partial
    assert f"LLM · {MODEL_ALIAS}" in html
    assert ("qa-unsupported" in html) == bool(answer["unsupported_sentences"])
    for flag in answer["unsupported_sentences"]:
        assert answer["text"][flag["start"] : flag["end"]] == flag["text"]


@pytest.mark.parametrize("judge", ["--no-judge", "--judge"])
def test_qa_eval_in_llm_mode(judge: str, seed_data_dir: Path, local_server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    monkeypatch.setenv("QA_LLM_BASE_URL", local_server.base_url)
    monkeypatch.setenv("QA_LLM_MODEL", MODEL_ALIAS)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["eval", "--gold", str(GOLD), "--limit", "4", "--out", str(out), judge])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["mode"] == f"llm:{MODEL_ALIAS}" and summary["n"] == 4
    assert summary["llm_fallbacks"] == 0
    assert 0.0 <= summary["ungrounded_share"] <= 1.0
    if judge == "--judge":
        assert summary["judge_model"] == MODEL_ALIAS
        assert summary["judge_errors"] + sum(1 for k in ("llm_correctness", "llm_faithfulness") if summary[k] is not None) >= 1
    else:
        assert "llm_correctness" not in summary
