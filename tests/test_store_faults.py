"""Faults around the store: a killed ingest, a Chroma server that goes away and comes back, a
read-only store, a store locked by another process."""

from __future__ import annotations

import ctypes
import hashlib
import json
import re
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import SEED_FILE, SEEDS, free_port

from qa import Engine, Settings, StoreError

pytestmark = pytest.mark.integration

QUESTIONS = ["What is Mark Sedwill's job?", "How many US diplomats will Russia expel?", "Which US consulate did Moscow close?"]


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


# -- a read-only store, a locked store: one line, nothing changed, and the next run recovers -----------

QA = Path(sys.executable).parent / "qa"
SEDWILL = "What is Mark Sedwill's job?"
ARCHIVE = (
    "Archive notes\n\n"
    "The archive room on the third floor holds the paper records of the ministry. "
    "It is opened every Tuesday by the duty clerk.\n"
)


class Indexed(NamedTuple):
    docs: Path  # a copy of seeds/, indexed from this path
    data: Path  # QA_DATA_DIR
    chunks: int  # what the first ingest stored
    answer: dict[str, Any]  # `qa ask --json SEDWILL` before any fault


def _qa(*args: str | Path, data: Path, owner_only: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the `qa` command; a hang fails the test after 120 s instead of stalling it."""
    env = {**os.environ, "QA_DATA_DIR": str(data)}
    # Root ignores permission bits: for a read-only store to be read-only to `qa`, its root process
    # gives up that override and is held to the file modes like the owner it is.
    preexec = _without_root_override if owner_only and os.geteuid() == 0 else None
    return subprocess.run(
        [str(QA), *map(str, args)], env=env, capture_output=True, text=True, timeout=120, preexec_fn=preexec
    )


_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork: the child only calls it


def _without_root_override() -> None:
    """In the child, before exec: drop the capabilities that let root read and write past file modes."""
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if _prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _ask(data: Path, question: str = SEDWILL) -> dict[str, Any]:
    done = _qa("ask", "--json", question, data=data)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    return {"text": answer["text"], "citations": [(c["source"], c["paragraph"], c["quote"]) for c in answer["citations"]]}


@pytest.fixture(scope="module")
def _pristine(tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    """A copy of seeds/ indexed by `qa ingest`, once for the module: each test works on a copy of its store."""
    root = tmp_path_factory.mktemp("store-faults")
    docs = shutil.copytree(SEEDS, root / "docs")
    data = root / ".qa"
    done = _qa("ingest", "--json", docs, data=data)
    assert done.returncode == 0, done.stderr
    answer = _ask(data)
    assert "national security adviser" in answer["text"] and answer["citations"]
    return Indexed(docs, data, json.loads(done.stdout)["chunks_embedded"], answer)


@pytest.fixture
def indexed(_pristine: Indexed, tmp_path: Path) -> Iterator[Indexed]:
    """The module's indexed store, copied for this test; what a test adds to the documents is removed after it."""
    shutil.copytree(_pristine.data, tmp_path / ".qa")
    before = set(_pristine.docs.iterdir())
    yield _pristine._replace(data=tmp_path / ".qa")
    for added in set(_pristine.docs.iterdir()) - before:
        added.unlink()


def _answer(answer: Any) -> dict[str, Any]:
    """`_ask`'s view of an answer given in this process."""
    return {"text": answer.text, "citations": [(c.source, c.paragraph, c.quote) for c in answer.citations]}


def _fingerprint(store: Path) -> str:
    """Every file of the store, names and bytes: equal fingerprints mean nothing was written."""
    digest = hashlib.sha256()
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(store)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def _assert_one_line_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [f"Error: {message}"])


def _assert_next_ingest_embeds_only_the_change(indexed: Indexed, *, owner_only: bool = False) -> None:
    done = _qa("ingest", "--json", indexed.docs, data=indexed.data, owner_only=owner_only)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["added"], report["updated"], report["removed"], report["unchanged"]) == (
        ["archive.txt"], [], [], [SEED_FILE.name]
    )
    assert report["chunks_embedded"] > 0 and report["chunks_deleted"] == 0

    engine = Engine(Settings(data_dir=indexed.data, _env_file=None))  # what `qa ask` answers, asked in this process
    store = engine.store
    chunks = store.all_chunks()
    assert len(chunks) == indexed.chunks + report["chunks_embedded"]  # each chunk once
    assert sum(c.source == "archive.txt" for c in chunks) == report["chunks_embedded"]
    assert store.sentences.count() == sum(len(c.sentences) for c in chunks)  # no orphaned or doubled vectors
    assert _answer(engine.ask(SEDWILL)) == indexed.answer
    assert {c[0] for c in _answer(engine.ask("Who opens the archive room?"))["citations"]} == {"archive.txt"}


def test_read_only_store_refuses_ingest_and_ask_in_one_line_and_the_next_ingest_embeds_only_the_change(
    indexed: Indexed,
) -> None:
    (indexed.docs / "archive.txt").write_text(ARCHIVE, encoding="utf-8")
    store = indexed.data / "chroma"
    read_only = f"The store at {store} is read-only; fix its permissions or set QA_DATA_DIR."
    _set_writable(store, False)
    try:
        before = _fingerprint(store)
        _assert_one_line_error(_qa("ingest", indexed.docs, data=indexed.data, owner_only=True), read_only)
        # Asking fails too: Chroma writes to its SQLite file as it opens it, even to read (it has
        # no read-only client: chroma-core/chroma#1438), so the user is told what to fix.
        _assert_one_line_error(_qa("ask", SEDWILL, data=indexed.data, owner_only=True), read_only)
        assert _fingerprint(store) == before
    finally:
        _set_writable(store, True)
    _assert_next_ingest_embeds_only_the_change(indexed, owner_only=True)


def test_locked_store_fails_ingest_and_ask_in_one_line_instead_of_waiting_and_the_next_ingest_embeds_only_the_change(
    indexed: Indexed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_LOCK_WAIT", "1")  # each of the three commands waits this long before saying "locked"
    (indexed.docs / "archive.txt").write_text(ARCHIVE, encoding="utf-8")
    store = indexed.data / "chroma"
    locked = f"The store at {store} is locked by another process; retry in a moment."
    before = _fingerprint(store)
    holder = sqlite3.connect(store / "chroma.sqlite3", timeout=0, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # what a writer in another process holds; Chroma would wait 1000 s
        _assert_one_line_error(_qa("ingest", indexed.docs, data=indexed.data), locked)
        _assert_one_line_error(_qa("ask", SEDWILL, data=indexed.data), locked)
        _assert_one_line_error(_qa("eval", "--offline", "--out", indexed.data / "run", data=indexed.data), locked)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _fingerprint(store) == before
    _assert_next_ingest_embeds_only_the_change(indexed)
