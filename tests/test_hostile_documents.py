"""Documents that misbehave: each is indexed, skipped with a reason, or refused clearly; the ingest goes on."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import SEED_FILE

from qa import Engine, Settings


def _engine(tmp_path: Path, **overrides: object) -> Engine:
    return Engine(Settings(data_dir=tmp_path / ".qa", _env_file=None, **overrides))


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub dir").mkdir(parents=True)
    shutil.copy(SEED_FILE, docs / "article.txt")
    shutil.copy(SEED_FILE, docs / "sub dir" / "article copy.txt")  # a duplicate under another name
    (docs / "empty.txt").write_text("", encoding="utf-8")
    (docs / "blank.md").write_text("\n\n   \n", encoding="utf-8")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (docs / "latin1.txt").write_bytes("Le caf\xe9 est ferm\xe9 le lundi.".encode("latin-1"))
    (docs / "naïve café 東京.md").write_text("# Tokyo\n\nThe café in Tokyo opens at nine.", encoding="utf-8")
    (docs / "huge.txt").write_bytes(b"word " * (3 * 1024 * 1024 // 5 + 1))  # ~3 MB, over a 2 MB limit
    outside = tmp_path / "secret.txt"
    outside.write_text("The vault code is 4512.", encoding="utf-8")
    os.symlink(outside, docs / "link-outside.txt")
    os.symlink(docs / "article.txt", docs / "link-inside.txt")
    return docs


def test_each_bad_file_is_skipped_with_a_reason_and_the_good_ones_indexed(messy_folder: Path, tmp_path: Path) -> None:
    engine = _engine(tmp_path, max_file_mb=2)
    report = engine.ingest(messy_folder)
    assert sorted(report.added) == [
        "article.txt", "latin1.txt", "link-inside.txt", "naïve café 東京.md", "sub dir/article copy.txt"
    ]  # Latin-1 is read with its detected encoding (issue 15)
    assert set(report.skipped) == {"empty.txt", "blank.md", "binary.txt", "huge.txt", "link-outside.txt"}
    assert "binary" in report.skipped["binary.txt"]
    assert "outside" in report.skipped["link-outside.txt"]
    assert "too large" in report.skipped["huge.txt"] and "QA_MAX_FILE_MB" in report.skipped["huge.txt"]
    assert "empty" in report.skipped["empty.txt"]


def test_symlinks_out_of_the_corpus_are_never_read(messy_folder: Path, tmp_path: Path) -> None:
    engine = _engine(tmp_path, max_file_mb=2)
    engine.ingest(messy_folder)
    assert not any("4512" in c.text for c in engine.corpus.chunks)
    answer = engine.ask("What is the vault code?")
    assert "4512" not in answer.text


def test_unicode_and_spaced_names_are_cited_by_their_path(messy_folder: Path, tmp_path: Path) -> None:
    engine = _engine(tmp_path, max_file_mb=2)
    engine.ingest(messy_folder)
    answer = engine.ask("When does the café in Tokyo open?")
    assert answer.citations and answer.citations[0].source == "naïve café 東京.md"
    text = engine.document_text(answer.citations[0].doc_id)  # the extracted text, kept under QA_DATA_DIR
    assert text is not None and text[answer.citations[0].start : answer.citations[0].end] == answer.citations[0].quote


def test_a_file_removed_between_ingests_leaves_no_trace(messy_folder: Path, tmp_path: Path) -> None:
    engine = _engine(tmp_path, max_file_mb=2)
    engine.ingest(messy_folder)
    (messy_folder / "naïve café 東京.md").unlink()
    report = engine.ingest(messy_folder)
    assert report.removed == ["naïve café 東京.md"]
    assert not any("Tokyo" in c.text for c in engine.corpus.chunks)


def test_a_deleted_store_folder_says_to_ingest_again(tmp_path: Path) -> None:
    from qa import IndexMissingError

    engine = _engine(tmp_path)
    engine.ingest(SEED_FILE.parent)
    shutil.rmtree(tmp_path / ".qa" / "chroma")
    with pytest.raises(IndexMissingError, match="qa ingest"):
        _engine(tmp_path).ask("Who is Putin?")
