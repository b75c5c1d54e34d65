"""Incremental ingestion: unchanged files embed nothing, changed files replace their chunks, removed files go."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import SEED_FILE

from qa import Engine, InputError, Settings


def _engine(tmp_path: Path) -> Engine:
    return Engine(Settings(data_dir=tmp_path / ".qa", _env_file=None))


def test_reingesting_an_unchanged_folder_embeds_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    shutil.copy(SEED_FILE, corpus / "article.txt")
    engine = _engine(tmp_path)
    first = engine.ingest(corpus)
    assert first.added == ["article.txt"] and first.chunks_embedded == 7
    again = _engine(tmp_path).ingest(corpus)
    assert again.unchanged == ["article.txt"]
    assert again.chunks_embedded == 0 and again.chunks_deleted == 0
    assert engine.store.count() == 7


def test_changed_file_replaces_its_chunks_and_removed_file_is_dropped(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Alpha paragraph one.\n\nAlpha paragraph two.", encoding="utf-8")
    (corpus / "b.md").write_text("# Bravo\n\nThe bravo team meets on Tuesdays.", encoding="utf-8")
    engine = _engine(tmp_path)
    engine.ingest(corpus)
    assert engine.store.count() == 3  # b.md's heading is its chunk's section, not a chunk
    (corpus / "a.txt").write_text("Alpha paragraph one.\n\nThe zebra crossing was repainted in May.", encoding="utf-8")
    (corpus / "b.md").unlink()
    report = engine.ingest(corpus)
    assert report.updated == ["a.txt"] and report.removed == ["b.md"]
    assert report.chunks_embedded == 1  # only the changed paragraph is embedded again
    assert report.chunks_deleted == 2  # the old paragraph two, and b.md's body
    assert engine.store.count() == 2
    answer = engine.ask("When was the zebra crossing repainted?")
    assert "May" in answer.text and answer.citations[0].source == "a.txt"
    assert not any("bravo" in c.text.lower() for c in engine.corpus.chunks)


def test_ingest_reports_skipped_files_and_indexes_the_rest(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    shutil.copy(SEED_FILE, corpus / "article.txt")
    (corpus / "bad.txt").write_bytes(b"\x00\x01binary")
    (corpus / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    report = _engine(tmp_path).ingest(corpus)
    assert report.added == ["article.txt"]
    assert "binary" in report.skipped["bad.txt"]
    assert "unsupported file type .xlsx" in report.skipped["sheet.xlsx"]


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_missing_or_empty_folder_is_a_clear_error(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "nothing"
    if make == "empty":
        folder.mkdir()
    with pytest.raises(InputError, match="nothing|No documents"):
        _engine(tmp_path).ingest(folder)


def test_two_folders_in_one_collection_do_not_remove_each_other(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "x.txt").write_text("The lighthouse keeper is named Ada.", encoding="utf-8")
    (two / "y.txt").write_text("The ferry leaves at noon.", encoding="utf-8")
    engine = _engine(tmp_path)
    engine.ingest(one)
    report = engine.ingest(two)
    assert report.removed == []
    assert engine.store.count() == 2
