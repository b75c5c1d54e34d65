"""The `qa` command as a user types it: answers with sources, one-line errors, non-zero exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa.cli import main


def test_ask_prints_the_answer_then_numbered_sources(seed_data_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    result = CliRunner().invoke(main, ["ask", "What is Mark Sedwill's job?"])
    assert result.exit_code == 0, result.output
    assert "national security adviser" in result.output
    assert "[1]" in result.output
    assert "Sources:" in result.output and "000_da55755936a874b9.txt, paragraph 6" in result.output


def test_ask_json_carries_citations_with_offsets(seed_data_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    result = CliRunner().invoke(main, ["ask", "--json", "How many US diplomats will Russia expel?"])
    data = json.loads(result.output)
    assert data["mode"] == "extractive" and not data["abstained"]
    assert "60" in data["text"]
    cite = data["citations"][0]
    assert set(cite) >= {"n", "source", "title", "paragraph", "start", "end", "quote", "score"}


def test_empty_question_is_one_line_error_with_exit_1(seed_data_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))
    result = CliRunner().invoke(main, ["ask", "   "])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: The question is empty: type a question about the documents."]


def test_ask_without_an_index_says_to_ingest_first() -> None:
    result = CliRunner().invoke(main, ["ask", "Who is Putin?"])
    assert result.exit_code == 1
    assert "Run `qa ingest" in result.output
    assert "Traceback" not in result.output


def test_ingest_of_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "Folder not found" in result.output


def test_ingest_warns_about_skipped_files_and_indexes_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.txt").write_text("Paris is the capital of France.", encoding="utf-8")
    (docs / "bad.txt").write_bytes(b"\xff\xfe\x00\x00bad")
    result = CliRunner().invoke(main, ["ingest", str(docs)])
    assert result.exit_code == 0
    assert "warning: skipped bad.txt" in result.output
    assert "1 added" in result.output


@pytest.mark.real_model
def test_info_names_store_model_and_mode(real_seed_data_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(real_seed_data_dir))
    data = json.loads(CliRunner().invoke(main, ["info", "--json"]).output)
    assert data["chunks"] == 7 and data["documents"] == 1
    assert data["mode"] == "extractive"
    assert "all-MiniLM-L6-v2" in data["embedding_model"]
    assert data["collection"] == "qa"


def test_a_store_another_process_holds_waits_qa_lock_wait_seconds_then_says_locked(  # type: ignore[no-untyped-def]
    seed_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import shutil
    import sqlite3
    import threading

    data = tmp_path / ".qa"
    shutil.copytree(seed_data_dir, data)
    monkeypatch.setenv("QA_DATA_DIR", str(data))
    holder = sqlite3.connect(data / "chroma" / "chroma.sqlite3", timeout=0, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another process mid-write, as a database browser or a suspended writer leaves it
    try:
        monkeypatch.setenv("QA_LOCK_WAIT", "0")
        refused = CliRunner().invoke(main, ["ask", "What is Mark Sedwill's job?"])
        assert refused.exit_code == 1
        assert refused.output == f"Error: The store at {data / 'chroma'} is locked by another process; retry in a moment.\n"
        # Waiting longer than the other process holds the store: the question is answered.
        monkeypatch.setenv("QA_LOCK_WAIT", "120")
        threading.Timer(1.0, holder.execute, args=("ROLLBACK",)).start()
        answered = CliRunner().invoke(main, ["ask", "What is Mark Sedwill's job?"])
        assert answered.exit_code == 0, answered.output
        assert "national security adviser" in answered.output
    finally:
        holder.close()


def test_a_bad_lock_wait_is_a_one_line_error_naming_the_variable(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QA_LOCK_WAIT", "-1")
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Bad setting QA_LOCK_WAIT:") and result.output.count("\n") == 1


@pytest.mark.parametrize("value", ["", "minilm-l12"])
def test_an_empty_or_unknown_embedding_model_is_a_one_line_error_listing_the_choices(value: str, monkeypatch, seed_data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QA_DATA_DIR", str(seed_data_dir))  # an index exists: the name is refused before any model check
    monkeypatch.setenv("QA_EMBED_MODEL", value)
    result = CliRunner().invoke(main, ["ask", "What is Mark Sedwill's job?"])
    assert result.exit_code == 1
    assert result.output == (f"Error: Bad setting QA_EMBED_MODEL: {value!r} names no embedding model; "
                             "choose one of: minilm, minilm-torch, openai.\n")


def test_every_front_end_starts_through_engine_open_not_through_the_cli_module() -> None:
    import re

    from qa.settings import PROJECT_ROOT

    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for path in sorted((PROJECT_ROOT / "qa").rglob("*.py"))
        if path.name != "cli.py" or path.parent.name != "qa"
        if re.search(r"^\s*(from qa\.cli\b|import qa\.cli\b)", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert offenders == []
    for front_end in ("ui.py", "slack.py", "api.py", "eval/run.py", "check.py", "cli.py"):
        assert "Engine.open(" in (PROJECT_ROOT / "qa" / front_end).read_text(encoding="utf-8"), front_end


def test_engine_open_refuses_bad_settings_and_unknown_collections_in_one_line(seed_data_dir: Path) -> None:
    import pytest

    from qa import Engine, Settings
    from qa.errors import ConfigError

    with pytest.raises(ConfigError, match="Bad collection name"):
        Engine.open(Settings(data_dir=seed_data_dir, collection="no spaces please", _env_file=None))
    with pytest.raises(ConfigError, match="QA_SLACK_CHANNEL_COLLECTIONS"):
        Engine.open(Settings(data_dir=seed_data_dir, slack_channel_collections="C123", _env_file=None))
    with pytest.raises(ConfigError, match=r"No collection 'hr' \(collections: .*qa.*\)\. Run `qa ingest DIR --collection hr` first"):
        Engine.open(Settings(data_dir=seed_data_dir, _env_file=None), collection="hr", must_exist=True)
    opened = Engine.open(Settings(data_dir=seed_data_dir, _env_file=None))
    assert not opened.is_empty() and opened.chunk_count() == len(opened.chunks()) > 0
