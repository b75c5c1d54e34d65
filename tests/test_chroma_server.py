"""Scale-out: the same engine against a real `chroma run` server on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from conftest import SEEDS, free_port

from qa import Engine, Settings, StoreError
from qa.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail("chroma run did not start")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_ingest_and_ask_through_a_chroma_server(chroma_server: int, tmp_path: Path) -> None:
    settings = Settings(chroma_host="127.0.0.1", chroma_port=chroma_server, data_dir=tmp_path / ".qa", _env_file=None)
    engine = Engine(settings)
    report = engine.ingest(SEEDS)
    assert report.chunks_embedded == 7
    assert not (tmp_path / ".qa" / "chroma").exists()  # nothing stored locally
    answer = Engine(settings).ask("What is Mark Sedwill's job?")
    assert "national security adviser" in answer.text
    assert Engine(settings).ingest(SEEDS).chunks_embedded == 0


def test_unreachable_chroma_server_is_a_clear_cli_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("QA_CHROMA_PORT", str(free_port()))
    result = CliRunner().invoke(main, ["ask", "Who is Putin?"])
    assert result.exit_code == 1
    assert "Cannot reach the Chroma server" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_engine_raises_store_error_when_server_is_down(tmp_path: Path) -> None:
    settings = Settings(chroma_host="127.0.0.1", chroma_port=free_port(), data_dir=tmp_path, _env_file=None)
    with pytest.raises(StoreError, match="chroma run"):
        Engine(settings).ingest(SEEDS)
