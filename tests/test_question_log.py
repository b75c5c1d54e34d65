"""The per-question log: one JSON line per question under QA_DATA_DIR/logs/, rotated, no secrets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from pydantic import SecretStr

from qa import Engine, Settings
from qa.errors import InputError, StoreError
from qa.querylog import QuestionLog


def _lines(settings: Settings) -> list[dict[str, Any]]:
    path = settings.data_dir / "logs" / "questions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def seed_engine(seed_engine: Engine) -> Engine:
    """The seed engine with no log yet (the shared seed index may carry other tests' questions)."""
    shutil.rmtree(seed_engine.settings.data_dir / "logs", ignore_errors=True)
    return seed_engine


def test_each_question_is_logged_once_without_its_text(seed_engine: Engine) -> None:
    seed_engine.ask("What is Mark Sedwill's job?")
    list(seed_engine.stream("What is the capital of Peru?"))  # the chat page's path
    with pytest.raises(InputError):
        seed_engine.ask("   ")
    answered, abstained, refused = _lines(seed_engine.settings)
    assert answered["mode"] == "extractive" and answered["abstained"] is False and answered["error"] is None
    assert answered["latency_ms"] > 0 and answered["time"].endswith("+00:00") and len(answered["id"]) == 16
    assert abstained["abstained"] is True
    assert refused["error"] == "EmptyQuestionError" and "empty" in refused["message"]  # an InputError: nothing left once cleaned
    assert len({answered["id"], abstained["id"], refused["id"]}) == 3
    text = (seed_engine.settings.data_dir / "logs" / "questions.jsonl").read_text(encoding="utf-8")
    assert "Sedwill" not in text and "Peru" not in text and "question" not in answered


def test_question_text_is_logged_only_when_asked_for_and_secrets_never(seed_engine: Engine) -> None:
    settings = seed_engine.settings.model_copy(update={
        "log_questions": True,
        "llm_api_key": SecretStr("own-key-4f9a1c"),
        "slack_bot_token": SecretStr("xoxb-1234-5678-abcdefgh"),
        "ui_auth": SecretStr("admin:hunter2-pass"),
    })
    engine = Engine(settings)
    engine.ask("What is Mark Sedwill's job? (own-key-4f9a1c, hunter2-pass, sk-proj-abcdefghijkl)")
    [line] = _lines(settings)
    assert line["question"].startswith("What is Mark Sedwill's job?")
    raw = (settings.data_dir / "logs" / "questions.jsonl").read_text(encoding="utf-8")
    for secret in ("own-key-4f9a1c", "hunter2-pass", "sk-proj-abcdefghijkl", "xoxb-1234"):
        assert secret not in raw


def test_a_store_error_is_logged_with_its_cause(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / ".qa", chroma_host="127.0.0.1", chroma_port=free_port())
    with pytest.raises(StoreError):
        Engine(settings).ask("What is Mark Sedwill's job?")
    [line] = _lines(settings)
    assert line["error"] == "StoreError" and "Cannot reach the Chroma server" in line["message"]
    assert line["cause"] and ":" in line["cause"]  # the exception Chroma raised, by class and message


def test_the_log_rotates_and_keeps_a_bounded_number_of_files(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / ".qa", log_max_mb=1, log_backups=2)
    log = QuestionLog(settings)
    for n in range(12_000):  # ~3.6 MB of records
        log.write({"id": f"{n:016x}", "padding": "x" * 250})
    log.close()
    files = sorted(p.name for p in (settings.data_dir / "logs").iterdir())
    assert files == ["questions.jsonl", "questions.jsonl.1", "questions.jsonl.2"]
    assert all(p.stat().st_size <= 1_000_000 for p in (settings.data_dir / "logs").iterdir())
