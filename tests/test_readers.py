"""Readers, one per format: the text they extract, in reading order, with pages and heading paths.

Every fixture is written by the library that writes the format (fpdf2, python-docx, python-pptx,
Debian's chromium printing a page to PDF), never by hand.
"""

from __future__ import annotations

from pathlib import Path

import doc_fixtures as fx
import pytest

from qa.documents import chunk_document, load_file
from qa.errors import InputError
from qa.readers import HEADING, TABLE, read_document


def _words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def _chunks(path: Path):  # type: ignore[no-untyped-def]
    doc = load_file(path, source=path.name, max_bytes=10**8, root=str(path.parent))
    return doc, chunk_document(doc, count_tokens=_words, max_tokens=200)


def _block_texts(path: Path) -> list[tuple[int | None, str, str]]:
    doc = read_document(path)
    return [(b.page, b.kind, doc.text[b.start : b.end]) for b in doc.blocks]


def test_pdf_text_keeps_its_page_numbers(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_pdf(tmp_path / "handbook.pdf"))
    assert doc.title == "Harbour operations handbook"
    opening = next(c for c in chunks if "harbour office opens at seven" in c.text)
    assert opening.page == 2
    assert opening.section == "Opening hours"  # from the PDF's bookmarks
    assert not any(c.text == "Opening hours" for c in chunks)  # the heading is a path, not a quote
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_two_column_pdf_page_is_read_column_by_column(tmp_path: Path) -> None:
    """The columns' lines are written interleaved, left line then right line: read them as a reader would."""
    blocks = [text for page, _, text in _block_texts(fx.make_pdf(tmp_path / "handbook.pdf")) if page == 3]
    assert fx.LEFT_COLUMN in blocks
    assert fx.RIGHT_COLUMN in blocks
    assert blocks.index(fx.LEFT_COLUMN) < blocks.index(fx.RIGHT_COLUMN)


def test_pdf_table_rows_are_quoted_with_their_column_headers(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_pdf(tmp_path / "handbook.pdf"))
    rows = [c.text for c in chunks if c.page == 4 and "Plan:" in c.text]
    assert rows == [
        "Plan: Bronze; Monthly price: 9 EUR; Seats: 1",
        "Plan: Silver; Monthly price: 19 EUR; Seats: 3",
        "Plan: Gold; Monthly price: 49 EUR; Seats: 10",
    ]


def test_browser_printed_pdf_reads_as_words_in_reading_order(tmp_path: Path) -> None:
    """Chromium places every glyph on its own (CID fonts, ToUnicode maps): words must still come out whole."""
    blocks = _block_texts(fx.make_browser_pdf(tmp_path / "notice.pdf"))
    texts = [text for _, _, text in blocks]
    assert (1, "text", "Ferry timetable notice") in blocks
    assert (2, "text", "The winter ferry leaves the island at quarter past six and returns at nine in the evening.") in blocks
    # its second page sets two columns with CSS: left column first, each whole
    assert texts.index(fx.LEFT_COLUMN) < texts.index(fx.RIGHT_COLUMN)


def test_scanned_pdf_is_refused_as_having_no_text_layer(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no text layer.*OCR"):
        read_document(fx.make_scanned_pdf(tmp_path / "scan.pdf"))


def test_damaged_pdf_is_refused_in_one_line(tmp_path: Path) -> None:
    path = fx.make_pdf(tmp_path / "cut.pdf")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match="unreadable PDF"):
        read_document(path)


def test_docx_headings_become_the_heading_path_and_tables_rows(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_docx(tmp_path / "policy.docx"))
    sick = next(c for c in chunks if "note from a doctor" in c.text)
    assert sick.section == "3. Leave entitlements › Sick leave"
    assert sick.text == "Sick leave longer than three days needs a note from a doctor."  # no heading glued on
    assert any(c.text == "Item: Laptop; Replaced every: four years" and c.section == "4. Equipment" for c in chunks)


def test_pptx_slides_are_pages_titled_by_their_slide_title(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_pptx(tmp_path / "results.pptx"))
    hired = next(c for c in chunks if "fourteen engineers" in c.text)
    assert (hired.page, hired.section) == (2, "Hiring")
    assert any(c.text == "Office: Oslo; Head count: 17" and c.page == 2 for c in chunks)


def test_saved_html_page_is_indexed_without_navigation_scripts_or_cookie_banner(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_html(tmp_path / "guide.html"))
    text = doc.text.lower()
    for boilerplate in ("cookies", "navigation menu", "tracking", "injected script", "late script", "footer", "slogan"):
        assert boilerplate not in text, boilerplate
    pads = next(c for c in chunks if "Brake pads" in c.text)
    assert pads.section == "Bicycle repair guide › Brakes"
    assert any(c.text == "Tool: Hex key; Used for: adjusting the brake calliper" for c in chunks)


def test_csv_in_windows_1252_is_read_with_headers_on_every_row(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_csv(tmp_path / "cities.csv"))
    assert [c.text for c in chunks] == [
        "City: Zürich; Mayor: Corine Mauch; Population: 443,000",
        "City: Genève; Mayor: Christina Kitsos; Population: 203,000",
    ]


def test_rst_sections_and_tables_and_no_file_inclusion(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_rst(tmp_path / "deploy.rst"))
    rollback = next(c for c in chunks if "rollback" in c.text)
    assert rollback.section == "Deployment manual › Rolling back"
    assert any(c.text == "Service: metrics; Port: 9102" for c in chunks)
    assert "root:" not in doc.text  # `.. include:: /etc/passwd` is not followed


def test_markdown_headings_are_paths_and_table_rows_lose_their_pipes(tmp_path: Path) -> None:
    doc, chunks = _chunks(fx.make_markdown(tmp_path / "travel.md"))
    assert doc.title == "Travel policy" and "=====" not in doc.text
    sentences = [t for c in chunks for t in c.sentence_texts()]
    assert "Country: Japan; Daily allowance: 6000 JPY; Hotel cap: 20000 JPY" in sentences
    assert not any("|" in s or "---" in s for s in sentences)
    assert not any(s.startswith(("Allowances", "Booking", "Travel policy")) for s in sentences)
    booking = next(c for c in chunks if "travel-desk" in c.text)
    assert booking.section == "Travel policy › Booking" and booking.markup == "markdown"


def test_heading_glued_to_the_next_line_in_markdown_is_not_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "install.md"
    path.write_text("# Installation\nRun the installer as an administrator.\n\nSetup\n-----\nPick a folder.\n", encoding="utf-8")
    doc = read_document(path)
    kinds = [(b.kind, doc.text[b.start : b.end]) for b in doc.blocks]
    assert kinds == [(HEADING, "Installation"), ("text", "Run the installer as an administrator."),
                     (HEADING, "Setup"), ("text", "Pick a folder.")]


def test_windows_1252_text_is_decoded_not_refused(tmp_path: Path) -> None:
    doc = read_document(fx.make_cp1252_text(tmp_path / "cafe.txt"))
    assert doc.text == "The café on the quay serves crème brûlée every Friday – ask for Zoë."


def test_every_table_reader_makes_rows_units(tmp_path: Path) -> None:
    for make, name in ((fx.make_docx, "a.docx"), (fx.make_pptx, "a.pptx"), (fx.make_html, "a.html"), (fx.make_csv, "a.csv")):
        doc = read_document(make(tmp_path / name))
        tables = [b for b in doc.blocks if b.kind == TABLE]
        assert tables and all(doc.text[s:e] and "\n" not in doc.text[s:e] for b in tables for s, e in b.units), name


def test_unsupported_type_is_named_in_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(InputError, match=r"unsupported file type \.xlsx"):
        load_file(path, source=path.name, max_bytes=10**6)


def test_a_markdown_table_row_as_gold_evidence_matches_the_row_as_quoted() -> None:
    from qa.metrics import contains_any

    assert contains_any("Country: Japan; Daily allowance: 6000 JPY; Hotel cap: 20000 JPY", ["| Japan | 6000 JPY | 20000 JPY |"])
    assert not contains_any("Country: France; Daily allowance: 45 EUR; Hotel cap: 150 EUR", ["| Japan | 6000 JPY | 20000 JPY |"])
    assert contains_any("Trips need **written approval** first.", ["Trips need written approval"])


def test_html_without_utf8_uses_its_declared_charset_or_a_detected_one(tmp_path: Path) -> None:
    declared = tmp_path / "declared.html"
    declared.write_bytes('<meta charset="iso-8859-2"><p>Zażółć gęślą jaźń.</p>'.encode("iso-8859-2"))
    undeclared = tmp_path / "undeclared.html"
    undeclared.write_bytes("<p>The café serves crème brûlée.</p>".encode("cp1252"))
    assert read_document(declared).text == "Zażółć gęślą jaźń."
    assert read_document(undeclared).text == "The café serves crème brûlée."


def test_password_protected_pdf_says_so(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "The safe combination is written here.")
    pdf.set_encryption(owner_password="owner", user_password="user")
    pdf.output(str(tmp_path / "locked.pdf"))
    with pytest.raises(InputError, match="password-protected"):
        read_document(tmp_path / "locked.pdf")
