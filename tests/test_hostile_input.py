"""Inputs that used to freeze or flood: huge one-line files, FIFOs, deep gold lines, an empty index, a misdirected key."""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import SEED_FILE, SEEDS, free_port
from fake_openai import fake_openai, fake_openai_server  # noqa: F401 - fixtures
from pydantic import SecretStr

from qa import Engine, Settings
from qa.cli import main
from qa.documents import Document, chunk_document, load_folder
from qa.embed import MiniLM, OpenAIEmbedder, bundled_model_dir
from qa.text import sentence_spans

QA = str(Path(sys.executable).with_name("qa"))
_TOKENS = MiniLM(bundled_model_dir()).tokens
SEED_TEXT = SEED_FILE.read_text(encoding="utf-8")


class _Sliced(str):
    """A str that counts the characters copied out of it by slicing (the work a splitter does on it)."""

    copied = 0

    def __getitem__(self, key: Any) -> Any:
        part = str.__getitem__(self, key)
        if isinstance(key, slice):
            _Sliced.copied += len(part)
        return part


class _Recorder:
    """The real tokenizer's counter, remembering the largest call it got."""

    def __init__(self) -> None:
        self.most_texts = 0
        self.most_chars = 0

    def __call__(self, texts: list[str]) -> list[int]:
        self.most_texts = max(self.most_texts, len(texts))
        self.most_chars = max(self.most_chars, sum(map(len, texts)))
        return _TOKENS.count(texts)


def _chunks(text: str, count: Callable[[list[str]], list[int]] = _TOKENS.count) -> list[Any]:
    doc = Document(source="x.txt", path=Path("x.txt"), title="x", text=text, file_hash="h")
    return chunk_document(doc, count_tokens=count, max_tokens=200)


def _one_paragraph(size: int) -> str:
    line = SEED_TEXT.replace("\n", " ")
    return (line * (size // len(line) + 1))[:size]


# -- sentence splitting is linear ----------------------------------------------------------------


def test_splitting_a_long_paragraph_looks_at_each_character_a_bounded_number_of_times() -> None:
    for size in (100_000, 200_000):
        text = _Sliced(_one_paragraph(size))
        _Sliced.copied = 0
        spans = sentence_spans(text)
        assert len(spans) > size // 400
        # linear: each sentence is cut out once (the old splitter copied text[:dot] at every full stop)
        assert _Sliced.copied <= 2 * size, f"{_Sliced.copied:,} characters copied for {size:,}"


def _finishes(work: Callable[[], Any], seconds: float) -> bool:
    """Run `work` in a daemon thread; whether it finished (a hang must fail the test, not stop the suite)."""
    done = threading.Event()

    def run() -> None:
        work()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(seconds)


def test_a_long_run_of_full_stops_does_not_hang_the_splitter() -> None:
    text = "It ended" + "." * 300_000 + "x and went on."
    # in a child process: a regex that backtracks holds the GIL, so a thread could not be given up on
    code = "import sys; from qa.text import sentence_spans; print(sentence_spans(sys.stdin.read()))"
    try:
        done = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("splitting a run of 300,000 full stops hung")  # takes ~0.1 s; quadratic backtracking took hours
    assert done.stdout.strip() == f"[(0, {len(text)})]", done.stderr


def test_splitting_keeps_the_sentences_it_found_before() -> None:
    text = "Mr. J. R. R. Tolkien wrote it. U.S. officials said so... Then: “Go!” he said.\n- a list item. Done?! Yes."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Mr. J. R. R. Tolkien wrote it.",
        "U.S. officials said so...",
        "Then: “Go!” he said.",
        "- a list item.",
        "Done?!",
        "Yes.",
    ]


# -- huge sentences: all of it embedded, memory bounded -----------------------------------------------


def test_text_without_whitespace_is_cut_into_windows_that_cover_all_of_it() -> None:
    rng = random.Random(7)
    text = "".join(rng.choice(string.ascii_letters + string.digits + "+/=.,-") for _ in range(200_000))
    chunks = _chunks(text)
    sentences = [s for c in chunks for s in c.sentences]
    assert sum(s.end - s.start for s in sentences) == len(text)  # every character is in some sentence
    assert sentences[0].start == 0 and sentences[-1].end == len(text)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert max(_TOKENS.count([c.text for c in chunks])) <= 256  # so the encoder reads all of each


def test_a_huge_sentence_without_punctuation_is_tokenized_a_bounded_piece_at_a_time() -> None:
    rng = random.Random(3)
    vocab = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9))) for _ in range(2000)]
    text = " ".join(rng.choice(vocab) for _ in range(60_000))  # ~400 KB, one "sentence"
    recorder = _Recorder()
    chunks = _chunks(text, recorder)
    # bounded whatever the input's size: batches of at most 1,024 texts of at most 16 characters a word piece
    assert recorder.most_texts <= 1024 and recorder.most_chars <= 1024 * 16 * 200 and recorder.most_chars < len(text) * 0.6
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert sum(len(c.text) for c in chunks) >= len(text) - len(chunks)  # only the spaces between pieces left out
    assert max(_TOKENS.count([c.text for c in chunks])) <= 256


# -- FIFOs and other non-regular files -------------------------------------------------------------


@pytest.fixture
def folder_with_fifo(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED_FILE, folder / "seed.txt")
    os.mkfifo(folder / "x.txt")
    return folder


def test_ingest_skips_a_fifo_once_and_indexes_the_rest(folder_with_fifo: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") or k == "QA_EMBED_MODEL"}
    env["QA_DATA_DIR"] = str(tmp_path / ".qa")
    try:
        done = subprocess.run([QA, "ingest", str(folder_with_fifo)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("qa ingest hung on a FIFO named x.txt")
    assert done.returncode == 0, done.stderr
    assert "1 added" in done.stdout and "1 skipped" in done.stdout
    mentions = [line for line in done.stderr.splitlines() if "x.txt" in line]
    assert mentions == ["warning: skipped x.txt: not a regular file (a pipe, socket or device); only regular files are read"]


def test_a_thousand_skipped_files_are_each_warned_about_once(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(SEED_FILE, folder / "seed.txt")
    for n in range(1000):
        (folder / f"empty-{n}.txt").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") or k == "QA_EMBED_MODEL"}
    env["QA_DATA_DIR"] = str(tmp_path / ".qa")
    done = subprocess.run([QA, "ingest", str(folder)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1000  # "warning: skipped empty-N.txt: empty file", once each


def test_chat_page_reindex_skips_a_fifo_in_the_seeds_folder(folder_with_fifo: Path, tmp_path: Path) -> None:
    from qa.ui import ChatPage

    settings = Settings(_env_file=None, data_dir=tmp_path / ".qa", seeds_dir=folder_with_fifo)
    page = ChatPage(Engine(settings), settings)
    result: list[str] = []
    assert _finishes(lambda: result.append(page.reindex()[0]), 180), "re-index hung on a FIFO"
    assert "1 added" in result[0] and "Skipped x.txt: not a regular file" in result[0]
    assert "Mark Sedwill" in page.engine.ask("What is Mark Sedwill's job?").text  # the write gate was let go


def test_load_folder_reports_a_fifo_as_skipped(folder_with_fifo: Path) -> None:
    scan = load_folder(folder_with_fifo, max_bytes=10**8)
    assert [d.source for d in scan.documents] == ["seed.txt"]
    assert scan.skipped == {"x.txt": "not a regular file (a pipe, socket or device); only regular files are read"}


# -- qa eval on bad gold lines -----------------------------------------------------------------------


def test_eval_names_the_line_of_a_deeply_nested_gold_item(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    good = {"question": "What is Mark Sedwill's job?", "answers": ["adviser"], "answerable": True, "evidence": ["adviser"]}
    gold.write_text(json.dumps(good) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--offline"])
    assert result.exit_code == 1
    assert f"{gold} line 2: nested too deeply" in result.output
    assert "RecursionError" not in result.output


@pytest.mark.slow
def test_eval_does_not_copy_a_huge_gold_line_into_its_results(seed_data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    gold = tmp_path / "gold.jsonl"
    huge = {"id": "huge", "question": "Who? " * 1_000_000, "answers": ["x" * 2_000_000, *(["y"] * 10_000)],
            "answerable": True, "evidence": ["z" * 2_000_000]}
    normal = {"id": "normal", "question": "What is Mark Sedwill's job?", "answers": ["national security adviser"],
              "answerable": True, "evidence": ["Mark Sedwill called the move"]}
    gold.write_text(json.dumps(huge) + "\n" + json.dumps(normal) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") or k == "QA_EMBED_MODEL"}
    env.update(QA_DATA_DIR=str(data), QA_SEEDS_DIR=str(SEEDS))
    done = subprocess.run([QA, "eval", "--gold", str(gold), "--offline", "--out", str(tmp_path / "run")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = tmp_path / "run" / "results.jsonl"
    assert results.stat().st_size < 100_000  # the gold line was 9 MB
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["id"] == "huge" and "too long" in rows[0]["error"]
    assert rows[0]["question"].endswith("[5,000,000 characters]")
    assert rows[1]["metrics"]["answer_contains"] == 1.0
    assert (tmp_path / "run" / "report.md").stat().st_size < 200_000


# -- qa slack with nothing indexed ---------------------------------------------------------------------


def test_slack_on_an_empty_index_stops_at_start_up_in_one_line(tmp_path: Path) -> None:
    from tests.fake_slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

    slack = FakeSlack().start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "SLACK_")) or k == "QA_EMBED_MODEL"}
        env.update(QA_DATA_DIR=str(tmp_path / ".qa"), QA_SLACK_API_URL=slack.base_url, SLACK_BOT_TOKEN=BOT_TOKEN,
                   SLACK_SIGNING_SECRET=SIGNING_SECRET)
        try:
            done = subprocess.run([QA, "slack", "--http", "--port", str(free_port())], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("qa slack started serving on an empty index")
    finally:
        slack.stop()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: No index yet in embedded chroma at {tmp_path / '.qa' / 'chroma'}. Run `qa ingest seeds`, then start `qa slack`."
    ]


# -- keys go only where the README says --------------------------------------------------------------


def test_openai_embeddings_never_send_openai_api_key_to_a_third_party_server(fake_openai: Any, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / ".qa", embed_model="openai", llm_base_url=fake_openai.base_url,
                        openai_api_key=SecretStr("sk-openai-only-123456"))
    OpenAIEmbedder(settings, bundled_model_dir()).embed(["The fleet left Sevastopol."])
    sent = [r.headers.get("Authorization", "") for r in fake_openai.requests if r.path.endswith("/embeddings")]
    assert sent and not any("sk-openai-only" in h for h in sent)

    own = settings.model_copy(update={"llm_api_key": SecretStr("own-server-key")})
    OpenAIEmbedder(own, bundled_model_dir()).embed(["The fleet left Sevastopol."])
    last = [r for r in fake_openai.requests if r.path.endswith("/embeddings")][-1]
    assert last.headers.get("Authorization") == "Bearer own-server-key"
