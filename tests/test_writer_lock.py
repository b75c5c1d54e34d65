"""One writer at a time: two real `qa ingest` processes on one store, a writer that waits and then names
the holder, readers that never wait, and the chat page's upload and re-index under the same lock."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from concurrent_ingest import QA, run_rounds
from conftest import SEEDS, free_port

from qa import Settings
from qa.store import WriterLock

pytestmark = pytest.mark.integration

SEDWILL = "What is Mark Sedwill's job?"


def _qa(*args: str | Path, data: Path, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "QA_DATA_DIR": str(data), **env}
    return subprocess.run([str(QA), *map(str, args)], env=environ, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_ingest_processes_at_once_leave_every_vector_readable(tmp_path: Path) -> None:
    # Before the writer lock, the second of these rounds lost hundreds of sentence or chunk vectors,
    # with both processes exiting 0 (tests/concurrent_ingest.py measures it over more rounds). The
    # processes embed with the fake embedder: no HTTP, and the same damage without the lock.
    rounds = run_rounds(tmp_path, rounds=2, files=200, base_url=None)
    assert [r.line() for r in rounds if r.damaged] == []
    assert all(r.exits == [0, 0] for r in rounds)
    done = _qa("check", data=tmp_path / ".qa")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("The store is healthy: 800 chunks and 2000 sentences")


def _hold(settings: Settings, command: str, release: threading.Event, held: threading.Event) -> threading.Thread:
    def run() -> None:
        with WriterLock(settings).hold(command=command):
            held.set()
            release.wait(120)

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(30)
    return thread


def test_a_second_writer_waits_then_stops_in_one_line_naming_the_holder_while_readers_go_on(
    seed_data_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    docs = shutil.copytree(SEEDS, tmp_path / "docs")
    (docs / "extra.txt").write_text("The lighthouse of Varn is painted green.\n", encoding="utf-8")
    release, held = threading.Event(), threading.Event()
    holder = _hold(Settings(data_dir=data, _env_file=None), "qa ingest big-folder/", release, held)
    try:
        started = time.monotonic()
        done = _qa("ingest", docs, data=data, QA_WRITE_LOCK_TIMEOUT="1")
        waited = time.monotonic() - started
        assert done.returncode == 1 and done.stdout == ""
        [line] = done.stderr.splitlines()
        assert re.fullmatch(
            rf"Error: Another writer is updating embedded chroma at {re.escape(str(data / 'chroma'))}: "
            rf"pid {os.getpid()} on \S+ running `qa ingest big-folder/` since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\. "
            r"Gave up after 1 s \(QA_WRITE_LOCK_TIMEOUT\); retry when it has finished\.",
            line,
        ), line
        assert waited >= 1
        # Readers never take the lock: a question is answered while the writer holds it.
        asked = _qa("ask", "--json", SEDWILL, data=data)
        assert asked.returncode == 0, asked.stderr
        assert "national security adviser" in json.loads(asked.stdout)["text"]
        # A writer that waits long enough goes ahead once the holder is done.
        waiting = subprocess.Popen([str(QA), "ingest", "--json", str(docs)], env={**os.environ, "QA_DATA_DIR": str(data)},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2)
        assert waiting.poll() is None  # still waiting for the lock
    finally:
        release.set()
        holder.join()
    out, err = waiting.communicate(timeout=180)
    assert waiting.returncode == 0, err
    assert "extra.txt" in json.loads(out)["added"]


def test_writers_of_one_chroma_server_share_a_lock_on_this_machine_whatever_their_data_dir(tmp_path: Path) -> None:
    port = free_port()  # nothing needs to listen: the writer stops at the lock, before it connects
    server = {"chroma_host": "127.0.0.1", "chroma_port": port}
    release, held = threading.Event(), threading.Event()
    holder = _hold(Settings(data_dir=tmp_path / "one", _env_file=None, **server), "qa ingest one/", release, held)
    try:
        done = _qa("ingest", SEEDS, data=tmp_path / "two", QA_CHROMA_HOST="127.0.0.1", QA_CHROMA_PORT=str(port),
                   QA_WRITE_LOCK_TIMEOUT="1")
    finally:
        release.set()
        holder.join()
    assert done.returncode == 1
    assert f"Another writer is updating chroma server http://127.0.0.1:{port}: pid {os.getpid()}" in done.stderr
    assert "`qa ingest one/`" in done.stderr and len(done.stderr.splitlines()) == 1


def test_eval_corpus_ingest_takes_the_same_lock(tmp_path: Path) -> None:
    data = tmp_path / ".qa"
    release, held = threading.Event(), threading.Event()
    holder = _hold(Settings(data_dir=data, _env_file=None), "qa ingest docs/", release, held)
    try:
        done = _qa("eval", "--offline", "--corpus", SEEDS, "--out", tmp_path / "run", data=data, QA_WRITE_LOCK_TIMEOUT="1")
    finally:
        release.set()
        holder.join()
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: Another writer is updating embedded chroma") and "`qa ingest docs/`" in line


def test_chat_page_upload_and_reindex_wait_for_a_cli_writer_and_say_so_politely(tmp_path: Path, seed_data_dir: Path) -> None:
    from qa import Engine
    from qa.ui import ChatPage

    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    seeds = shutil.copytree(SEEDS, tmp_path / "seeds")
    settings = Settings(data_dir=data, seeds_dir=seeds, write_lock_timeout=0.5, _env_file=None)
    page = ChatPage(Engine(settings), settings)
    upload = tmp_path / "upload" / "notes.txt"
    upload.parent.mkdir()
    upload.write_text("The ferry to Kell leaves at nine.\n", encoding="utf-8")
    release, held = threading.Event(), threading.Event()
    holder = _hold(settings, "qa ingest seeds/", release, held)
    try:
        status, _docs, _ = page.upload([str(upload)])
        reindexed, _docs = page.reindex()
        answer = list(page.chat(SEDWILL, None))[-1][3]  # questions still answered
    finally:
        release.set()
        holder.join()
    busy = "Another upload or re-index is still running; try again when it has finished."
    assert busy in status and busy in reindexed
    assert str(data) not in status + reindexed
    assert "national security adviser" in answer["text"]
    upload.write_text("The ferry to Kell leaves at nine.\n", encoding="utf-8")
    status, _docs, _ = page.upload([str(upload)])
    assert "notes.txt: added and indexed." in status


def test_lock_is_reentrant_in_one_thread_and_excludes_other_threads(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / ".qa", write_lock_timeout=0.5, _env_file=None)
    lock, other = WriterLock(settings), WriterLock(settings)
    failures: list[str] = []
    with lock.hold(command="outer"), lock.hold(command="inner"):
        assert "running `outer`" in lock.holder()
        thread = threading.Thread(target=lambda: failures.append(_try(other)))
        thread.start()
        thread.join()
    assert failures and "running `outer`" in failures[0]
    assert _try(other) == ""  # released by the outer exit
    assert not lock.holder_path.exists()


def _try(lock: WriterLock) -> str:
    from qa.errors import StoreBusyError

    try:
        with lock.hold():
            return ""
    except StoreBusyError as exc:
        return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
