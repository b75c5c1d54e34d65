"""Chunking: sentence-aligned, within the encoder window, with offsets that reproduce the source."""

from __future__ import annotations

from pathlib import Path

from conftest import SEED_FILE

from qa.documents import chunk_document, load_file, load_folder
from qa.embed import MiniLM, bundled_model_dir
from qa.text import sentence_spans

_TOKENS = MiniLM(bundled_model_dir()).tokens


def _chunks(path: Path, max_tokens: int = 200):  # type: ignore[no-untyped-def]
    doc = load_file(path, source=path.name, max_bytes=10**8)
    return doc, chunk_document(doc, count_tokens=_TOKENS.count, max_tokens=max_tokens)


def test_every_chunk_and_sentence_is_the_source_text_at_its_offsets() -> None:
    doc, chunks = _chunks(SEED_FILE)
    source = SEED_FILE.read_text(encoding="utf-8")
    assert len({c.paragraph for c in chunks}) == 7
    for chunk in chunks:
        assert source[chunk.start : chunk.end] == chunk.text
        for sentence in chunk.sentences:
            assert source[sentence.start : sentence.end].strip() == source[sentence.start : sentence.end]
    quotes = [q for c in chunks for q in c.sentence_texts()]
    assert "Moscow also closed the US consulate in St. Petersburg, the second-largest city in Russia." in quotes


def test_long_paragraph_becomes_several_chunks_that_fit_the_encoder(tmp_path: Path) -> None:
    sentence = "The committee reviewed the quarterly budget and approved the new spending plan for roads. "
    path = tmp_path / "long.txt"
    path.write_text("Title line\n\n" + sentence * 60, encoding="utf-8")
    _, chunks = _chunks(path, max_tokens=200)
    body = [c for c in chunks if c.paragraph == 2]
    assert len(body) > 5
    assert all(n <= 256 for n in _TOKENS.count([c.text for c in body]))
    # No sentence is cut: each chunk ends where a sentence ends.
    assert all(c.text.endswith("roads.") for c in body)


def test_a_sentence_longer_than_the_window_is_split_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "run-on.txt"
    path.write_text(", ".join(f"item number {i}" for i in range(400)) + ".", encoding="utf-8")
    doc, chunks = _chunks(path)
    assert len(chunks) > 1
    assert all(n <= 256 for n in _TOKENS.count([c.text for c in chunks]))
    assert "item number 399" in chunks[-1].text


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "Dr. Smith flew to Washington, D.C. in Jan. 2019 with J. R. Jones. He met Mr. Brown at 5 p.m. today."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Dr. Smith flew to Washington, D.C. in Jan. 2019 with J. R. Jones.",
        "He met Mr. Brown at 5 p.m. today.",
    ]


def test_unreadable_files_are_skipped_with_a_reason_and_the_rest_loaded(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Good\n\nA fine document.", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    scan = load_folder(tmp_path, max_bytes=10**6)
    # Latin-1 is no longer refused: its encoding is detected (issue 15).
    assert [d.source for d in scan.documents] == ["good.md", "latin1.txt"]
    assert scan.documents[0].title == "Good"
    assert scan.documents[1].text == "Café crème"
    assert set(scan.skipped) == {"binary.txt", "empty.txt", "image.png"}
    assert "unsupported file type .png" in scan.skipped["image.png"]
