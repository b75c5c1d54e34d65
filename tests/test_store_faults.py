"""Faults around the store: a killed ingest, a Chroma server that goes away and comes back."""

from __future__ import annotations

import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SEED_FILE, free_port

from qa import Engine, Settings, StoreError

pytestmark = pytest.mark.integration

QUESTIONS = ["What is Mark Sedwill's job?", "How many US diplomats will Russia expel?", "Who is the Russian President?"]


def _corpus(folder: Path, copies: int) -> Path:
    """A corpus big enough for several write batches: the seed article under many names."""
    folder.mkdir()
    text = SEED_FILE.read_text(encoding="utf-8")
    for i in range(copies):
        (folder / f"copy-{i:03d}.txt").write_text(text.replace("Russia", f"Russia{i}", 1), encoding="utf-8")
    return folder


def _answers(engine: Engine) -> list[list[str]]:
    # The copies tie with each other, so which copy is cited may differ; what is quoted may not.
    return [sorted({c.quote for c in a.citations}) for a in map(engine.ask, QUESTIONS)]


@pytest.mark.slow
def test_ingest_killed_midway_is_completed_by_the_next_run(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "docs", copies=90)  # 630 chunks: three write batches of 256
    env = {**os.environ, "QA_DATA_DIR": str(tmp_path / "killed"), "QA_DEBUG": "1"}
    qa = str(Path(sys.executable).parent / "qa")
    proc = subprocess.Popen([qa, "ingest", str(corpus), "--progress"], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    buffer = ""
    # The bar moves only after a batch has been written: kill at its first move.
    while proc.poll() is None:
        buffer += proc.stderr.read(1)
        if re.search(r" [1-9]\d*/\d+ \[", buffer):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    killed = Engine(Settings(data_dir=tmp_path / "killed", _env_file=None))
    partial = killed.store.count()
    assert 0 < partial < 630, "the kill should land between batches"
    report = killed.ingest(corpus)
    assert report.chunks_embedded == 630 - partial  # only what was missing is embedded
    assert killed.store.count() == 630
    assert killed.store.sentences.count() == 90 * 24  # no orphaned or doubled sentence vectors

    clean = Engine(Settings(data_dir=tmp_path / "clean", _env_file=None))
    clean.ingest(corpus)
    assert _answers(killed) == _answers(clean)


def _start_chroma(path: Path, port: int) -> subprocess.Popen[bytes]:
    import requests

    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("chroma run did not start")


def test_chroma_server_restart_mid_session_recovers_without_reembedding(tmp_path: Path) -> None:
    port = free_port()
    server = _start_chroma(tmp_path / "server", port)
    settings = Settings(chroma_host="127.0.0.1", chroma_port=port, data_dir=tmp_path / ".qa", _env_file=None)
    engine = Engine(settings)
    try:
        engine.ingest(SEED_FILE.parent)
        before = engine.ask(QUESTIONS[0]).text
        server.terminate()
        server.wait(timeout=20)
        with pytest.raises(StoreError, match="Cannot reach the Chroma server"):
            engine.ask(QUESTIONS[0])
        server = _start_chroma(tmp_path / "server", port)
        assert engine.ask(QUESTIONS[0]).text == before
        assert engine.ingest(SEED_FILE.parent).chunks_embedded == 0
    finally:
        server.terminate()
        server.wait(timeout=20)
