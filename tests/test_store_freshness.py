"""A long-lived process sees other processes' ingests without a restart, answers while it ingests itself,
and never shows a user a store error with a server path in it."""

from __future__ import annotations

import os
import sys
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from concurrent_ingest import QA
from conftest import SEEDS, free_port
from test_store_faults import _start_chroma

from qa import Engine, Settings
from qa.ui import ChatPage

pytestmark = pytest.mark.integration

SEDWILL = "What is Mark Sedwill's job?"
VARN = "The lighthouse of Varn is painted green and white. Its keeper, Oda Brenn, lights it at dusk.\n"


def _ingest_in_another_process(folder: Path, settings: Settings) -> None:
    env = {**os.environ, "QA_DATA_DIR": str(settings.data_dir)}
    if settings.chroma_host:
        env |= {"QA_CHROMA_HOST": settings.chroma_host, "QA_CHROMA_PORT": str(settings.chroma_port)}
    done = subprocess.run([str(QA), "ingest", str(folder)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _answers_from_the_other_process(engine: Engine, tmp_path: Path) -> None:
    assert "national security adviser" in engine.ask(SEDWILL).text  # the index and corpus are loaded
    docs = tmp_path / "more"
    docs.mkdir()
    (docs / "varn.txt").write_text(VARN, encoding="utf-8")
    _ingest_in_another_process(docs, engine.settings)
    answer = engine.ask("Who keeps the lighthouse of Varn?")
    assert "Oda Brenn" in answer.text
    assert answer.citations[0].source == "varn.txt"
    assert "national security adviser" in engine.ask(SEDWILL).text
    (docs / "varn.txt").unlink()
    (docs / "ferry.txt").write_text("The ferry to Kell is captained by Ilse Marrow.\n", encoding="utf-8")
    _ingest_in_another_process(docs, engine.settings)  # removes varn.txt, adds ferry.txt
    assert "Ilse Marrow" in engine.ask("Who captains the ferry to Kell?").text
    assert not any(c.source == "varn.txt" for c in engine.corpus.chunks)


def test_a_running_engine_answers_from_a_document_another_process_ingested(seed_engine: Engine, tmp_path: Path) -> None:
    _answers_from_the_other_process(seed_engine, tmp_path)


@pytest.fixture
def server_settings(tmp_path: Path) -> Iterator[Settings]:
    port = free_port()
    server = _start_chroma(tmp_path / "server", port)
    try:
        yield Settings(chroma_host="127.0.0.1", chroma_port=port, data_dir=tmp_path / ".qa", _env_file=None)
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_running_engine_on_a_chroma_server_answers_from_another_process_ingest(server_settings: Settings, tmp_path: Path) -> None:
    engine = Engine(server_settings)
    engine.ingest(SEEDS)
    _answers_from_the_other_process(engine, tmp_path)


def test_the_chat_page_answers_from_another_process_ingest_and_shows_no_store_path(seed_engine: Engine, tmp_path: Path) -> None:
    page = ChatPage(seed_engine, seed_engine.settings)
    state = None
    *_, (_box, _messages, state, first) = page.chat(SEDWILL, state)
    assert "national security adviser" in first["text"]
    docs = tmp_path / "more"
    docs.mkdir()
    (docs / "varn.txt").write_text(VARN, encoding="utf-8")
    _ingest_in_another_process(docs, seed_engine.settings)
    *_, (_box, messages, state, answer) = page.chat("Who keeps the lighthouse of Varn?", state)
    assert "Oda Brenn" in answer["text"], answer
    assert "varn.txt" in page.corpus()

    # A store that fails underneath: the user gets a polite line, the path stays in the server log.
    shutil.rmtree(seed_engine.settings.store_path)
    seed_engine.settings.store_path.mkdir()
    (seed_engine.settings.store_path / "chroma.sqlite3").write_bytes(b"not a database" * 100)
    seed_engine.reopen()
    *_, (_box, messages, state, failed) = page.chat("Who keeps the lighthouse of Varn?", state)
    shown = messages[-1]["content"] + page.corpus()
    assert "the document store isn&#x27;t available right now" in messages[-1]["content"]
    assert "chroma" not in failed["error"].lower() and str(seed_engine.settings.data_dir) not in failed["error"]
    assert str(seed_engine.settings.data_dir) not in shown and "chroma" not in shown.lower()


def test_questions_are_answered_while_an_upload_is_being_indexed(seed_engine: Engine, tmp_path: Path) -> None:
    seeds = shutil.copytree(SEEDS, tmp_path / "seeds")
    settings = seed_engine.settings.model_copy(update={"seeds_dir": seeds})
    engine = Engine(settings)
    page = ChatPage(engine, settings)
    assert "national security adviser" in list(page.chat(SEDWILL, None))[-1][3]["text"]
    upload = tmp_path / "upload" / "ledger.txt"
    upload.parent.mkdir()
    # Many short paragraphs: seconds of embedding on 2 cores (the upload itself is what is timed here).
    upload.write_text(
        "\n\n".join(f"Ledger entry {i} records {i * 3} crates of tin for the port of Amsel. It was signed by clerk {i % 17}."
                    for i in range(600)),
        encoding="utf-8",
    )
    result: dict[str, str] = {}
    uploading = threading.Thread(target=lambda: result.update(status=page.upload([str(upload)])[0]))
    started = time.monotonic()
    uploading.start()
    during: list[float] = []
    while uploading.is_alive():
        t0 = time.monotonic()
        answer = list(page.chat(SEDWILL, None))[-1][3]
        if uploading.is_alive():
            during.append(time.monotonic() - t0)
        assert "national security adviser" in answer["text"]
    upload_s = time.monotonic() - started
    uploading.join()
    assert "ledger.txt: added and indexed." in result["status"]
    print(f"\n{len(during)} questions answered during a {upload_s:.1f} s upload; "
          f"{1000 * sum(during) / max(len(during), 1):.0f} ms a question on average, {1000 * max(during, default=0):.0f} ms at most")
    assert len(during) >= 3, (len(during), upload_s)  # before, the first waited for the whole upload
    assert "crates of tin" in list(page.chat("How many crates of tin does ledger entry 500 record?", None))[-1][3]["text"]


# -- another process mid-ingest: readers keep their last complete corpus (issue 16) --------------------

_PAUSED_WRITER = r"""
import pathlib, sys, time
from qa import Engine, Settings
data, folder, mid, go = sys.argv[1:5]
def pause(done: int, total: int) -> None:
    # After the first batch is written, while the rest is still to come: hold here until told to go on.
    if done < total and not pathlib.Path(mid).exists():
        pathlib.Path(mid).write_text(f"{done}/{total}")
        while not pathlib.Path(go).exists():
            time.sleep(0.05)
Engine(Settings(data_dir=data, _env_file=None)).ingest(folder, progress=False, on_progress=pause)
"""


def _copies(folder: Path, n: int) -> Path:
    """`n` renamed copies of the seed article: 7 chunks each, so 40 copies take two write batches of 256."""
    folder.mkdir()
    text = (SEEDS / "000_da55755936a874b9.txt").read_text(encoding="utf-8")
    for i in range(n):
        (folder / f"copy-{i:03d}.txt").write_text(text.replace("Russia", f"Russia{i}", 1), encoding="utf-8")
    return folder


def _start_paused_writer(engine: Engine, folder: Path, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    mid, go = tmp_path / "mid", tmp_path / "go"
    mid.unlink(missing_ok=True)
    go.unlink(missing_ok=True)
    env = {**os.environ, "QA_DATA_DIR": str(engine.settings.data_dir)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_WRITER, str(engine.settings.data_dir), str(folder), str(mid), str(go)],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 300
    while not mid.exists():
        assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
        assert time.monotonic() < deadline, "the writer never got past its first batch"
        time.sleep(0.1)
    return writer, go


def test_a_reader_keeps_its_corpus_while_another_process_is_mid_ingest(seed_engine: Engine, tmp_path: Path) -> None:
    before = seed_engine.ask(SEDWILL)
    assert "national security adviser" in before.text and len(seed_engine.corpus.chunks) == 7
    writer, go = _start_paused_writer(seed_engine, _copies(tmp_path / "copies", 40), tmp_path)
    try:
        assert seed_engine.store.state().writer is not None  # 256 of 280 chunks written, the rest to come
        during = seed_engine.ask(SEDWILL)
        assert len(seed_engine.corpus.chunks) == 7  # the last complete corpus, not a part of the new one
        assert [d["source"] for d in seed_engine.documents()] == ["000_da55755936a874b9.txt"]
        assert (during.text, during.citations) == (before.text, before.citations)
    finally:
        go.touch()
        assert writer.wait(timeout=300) == 0
    assert len(seed_engine.corpus.chunks) == 7 + 280  # finished: the whole new corpus at once
    assert seed_engine.store.state().writer is None


def test_a_writer_killed_mid_ingest_does_not_hold_readers_back(seed_engine: Engine, tmp_path: Path) -> None:
    seed_engine.ask(SEDWILL)
    writer, _ = _start_paused_writer(seed_engine, _copies(tmp_path / "copies", 40), tmp_path)
    writer.kill()
    writer.wait(timeout=60)
    assert seed_engine.store.state().writer is not None  # the mark outlives the writer...
    seed_engine.ask(SEDWILL)
    assert len(seed_engine.corpus.chunks) == 7 + 256  # ...but its lock died with it: readers see what it wrote
    report = seed_engine.ingest(tmp_path / "copies")  # and the next ingest completes the work
    assert report.chunks_embedded == 280 - 256 and seed_engine.store.state().writer is None
