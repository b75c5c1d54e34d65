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
