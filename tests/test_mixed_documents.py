"""A folder of real-world formats, end to end: one ingest, page- and section-precise citations,
table rows quoted whole, and a document's identity being its folder plus its path (issue 15)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import doc_fixtures as fx
import pytest
from click.testing import CliRunner

from qa import Engine, Settings
from qa.cli import main


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """`docs/` with every supported format, a scan and a spreadsheet; indexed once by `qa ingest docs --json`."""
    base = tmp_path_factory.mktemp("mixed")
    docs = base / "docs"
    docs.mkdir()
    fx.make_pdf(docs / "handbook.pdf")
    fx.make_browser_pdf(docs / "notice.pdf")
    fx.make_scanned_pdf(docs / "scan.pdf")
    fx.make_docx(docs / "policy.docx")
    fx.make_pptx(docs / "results.pptx")
    fx.make_html(docs / "guide.html")
    fx.make_csv(docs / "cities.csv")
    fx.make_rst(docs / "deploy.rst")
    fx.make_markdown(docs / "travel.md")
    fx.make_cp1252_text(docs / "cafe.txt")
    (docs / "budget.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    return base, docs


def _engine(base: Path) -> Engine:
    return Engine(Settings(data_dir=base / ".qa", _env_file=None))


@pytest.fixture(scope="module")
def ingested(mixed: tuple[Path, Path]) -> dict:  # type: ignore[type-arg]
    base, docs = mixed
    result = CliRunner().invoke(main, ["ingest", str(docs), "--json"], env={"QA_DATA_DIR": str(base / ".qa")})
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_a_mixed_folder_is_indexed_in_one_ingest_and_each_skip_is_named(ingested: dict) -> None:  # type: ignore[type-arg]
    assert sorted(ingested["added"]) == [
        "cafe.txt", "cities.csv", "deploy.rst", "guide.html", "handbook.pdf", "notice.pdf", "policy.docx",
        "results.pptx", "travel.md",
    ]
    assert "no text layer" in ingested["skipped"]["scan.pdf"]
    assert "unsupported file type .xlsx" in ingested["skipped"]["budget.xlsx"]


def test_cli_summary_lists_each_skipped_file_once(mixed: tuple[Path, Path], ingested: dict) -> None:  # type: ignore[type-arg]
    base, docs = mixed
    result = CliRunner().invoke(main, ["ingest", str(docs)], env={"QA_DATA_DIR": str(base / ".qa")})
    assert result.exit_code == 0, result.output
    assert result.output.count("scan.pdf") == 1 and "OCR" in result.output
    assert result.output.count("budget.xlsx") == 1
    assert "9 unchanged, 2 skipped" in result.output


def test_a_question_answered_on_page_2_is_cited_with_page_2(mixed: tuple[Path, Path], ingested: dict) -> None:  # type: ignore[type-arg]
    base, _ = mixed
    engine = _engine(base)
    answer = engine.ask("When does the harbour office open?")
    cite = answer.citations[0]
    assert (cite.source, cite.page) == ("handbook.pdf", 2)
    text = engine.document_text(cite.doc_id)  # the extracted text, stored under QA_DATA_DIR
    assert text is not None and text[cite.start : cite.end] == cite.quote
    data = answer.to_dict()["citations"][0]
    assert data["page"] == 2 and data["folder"] == "docs"
    shown = CliRunner().invoke(main, ["ask", "When does the harbour office open?"], env={"QA_DATA_DIR": str(base / ".qa")})
    assert "[1] docs/handbook.pdf, page 2, § Opening hours (chars" in shown.output


def test_a_browser_printed_pdf_is_cited_on_its_page(mixed: tuple[Path, Path], ingested: dict) -> None:  # type: ignore[type-arg]
    answer = _engine(mixed[0]).ask("When does the winter ferry leave the island?")
    assert "quarter past six" in answer.text
    assert (answer.citations[0].source, answer.citations[0].page) == ("notice.pdf", 2)


def test_a_question_answered_by_a_table_row_quotes_that_row(mixed: tuple[Path, Path], ingested: dict) -> None:  # type: ignore[type-arg]
    engine = _engine(mixed[0])
    answer = engine.ask("What is the daily allowance in Japan?")
    assert [c.quote for c in answer.citations] == ["Country: Japan; Daily allowance: 6000 JPY; Hotel cap: 20000 JPY"]
    assert answer.citations[0].section == "Travel policy › Allowances"
    price = engine.ask("How much does the Gold plan cost per month?")
    assert price.citations[0].quote == "Plan: Gold; Monthly price: 49 EUR; Seats: 10"  # the row leads; a runner-up may follow
    assert all(c.quote.startswith("Plan: ") for c in price.citations[1:])


def test_sections_are_cited_as_heading_paths(mixed: tuple[Path, Path], ingested: dict) -> None:  # type: ignore[type-arg]
    base, _ = mixed
    env = {"QA_DATA_DIR": str(base / ".qa")}
    shown = CliRunner().invoke(main, ["ask", "How many days of annual leave does an employee have?"], env=env)
    assert "docs/policy.docx, § 3. Leave entitlements, paragraph 1" in shown.output
    slide = _engine(base).ask("Where did the team hire fourteen engineers?").citations[0]
    assert (slide.source, slide.page, slide.location) == ("results.pptx", 2, "slide 2, § Hiring")


def test_a_saved_web_page_answers_from_its_content_only(mixed: tuple[Path, Path], ingested: dict) -> None:  # type: ignore[type-arg]
    engine = _engine(mixed[0])
    assert not any("cookie" in c.text.lower() or "navigation" in c.text.lower() for c in engine.corpus.chunks)
    answer = engine.ask("What shows that brake pads need replacing?")
    assert answer.citations[0].section == "Bicycle repair guide › Brakes"


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_a_copy_of_a_folder_never_costs_the_original_anything(tmp_path: Path) -> None:
    """Index docs/, then a copy, then delete a file from the copy and re-index it: docs/ keeps it all."""
    docs, copy = tmp_path / "docs", tmp_path / "docs-copy"
    _write(docs, "lighthouse.md", "# Lighthouse\n\nThe lighthouse keeper is named Ada Brennan.")
    _write(docs, "ferry.md", "# Ferry\n\nThe ferry to the island leaves at noon.")
    shutil.copytree(docs, copy)
    engine = _engine(tmp_path)
    assert engine.ingest(docs).chunks_embedded == 2
    assert sorted(engine.ingest(copy).added) == ["ferry.md", "lighthouse.md"]
    (copy / "lighthouse.md").unlink()
    assert engine.ingest(copy).removed == ["lighthouse.md"]
    answer = engine.ask("What is the lighthouse keeper's name?")
    assert "Ada Brennan" in answer.text and answer.citations[0].label == "docs/lighthouse.md"
    again = engine.ingest(docs)
    assert again.chunks_embedded == 0 and again.removed == [] and len(again.unchanged) == 2


def test_the_same_name_in_two_folders_is_two_documents_cited_with_their_folder(tmp_path: Path) -> None:
    _write(tmp_path / "alpha", "README.md", "# Alpha\n\nThe alpha service listens on port 8081.")
    _write(tmp_path / "beta", "README.md", "# Beta\n\nThe beta service listens on port 9091.")
    engine = _engine(tmp_path)
    engine.ingest(tmp_path / "alpha")
    engine.ingest(tmp_path / "beta")
    assert sorted((d["folder"], d["source"]) for d in engine.documents()) == [("alpha", "README.md"), ("beta", "README.md")]
    assert engine.info()["documents"] == 2
    answer = engine.ask("Which port does the beta service listen on?")
    assert answer.citations[0].label == "beta/README.md" and "9091" in answer.text


def test_ingest_of_one_file_indexes_it_and_removes_nothing_else(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    _write(docs, "a.txt", "The archive closes at four.")
    engine = _engine(tmp_path)
    engine.ingest(docs)
    _write(docs, "b.txt", "The bakery opens at six.")
    (docs / "a.txt").unlink()  # a folder ingest would remove it; a one-file ingest must not
    result = CliRunner().invoke(main, ["ingest", str(docs / "b.txt")], env={"QA_DATA_DIR": str(tmp_path / ".qa")})
    assert result.exit_code == 0, result.output
    assert "1 added, 0 updated, 0 removed" in result.output
    sources = sorted(d["source"] for d in _engine(tmp_path).documents())
    assert sources == ["a.txt", "b.txt"]
    # and it is the same document a folder ingest sees: re-indexing the folder finds b.txt unchanged
    report = _engine(tmp_path).ingest(docs)
    assert report.unchanged == ["b.txt"] and report.removed == ["a.txt"]


def test_a_removed_document_takes_its_stored_text_with_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    _write(docs, "a.md", "# A\n\nThe archive closes at four.")
    _write(docs, "b.md", "# B\n\nThe bakery opens at six.")
    engine = _engine(tmp_path)
    engine.ingest(docs)
    stored = tmp_path / ".qa" / "documents"
    assert len(list(stored.iterdir())) == 2
    (docs / "a.md").unlink()
    engine.ingest(docs)
    assert len(list(stored.iterdir())) == 1


def test_chat_page_accepts_the_same_types_and_opens_sources_in_their_document(tmp_path: Path) -> None:
    from qa.ui import ChatPage

    settings = Settings(data_dir=tmp_path / ".qa", seeds_dir=tmp_path / "seeds", max_upload_mb=1, _env_file=None)
    settings.seeds_dir.mkdir()
    page = ChatPage(Engine(settings), settings)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    pdf = fx.make_pdf(incoming / "Harbour handbook.pdf")
    docx = fx.make_docx(incoming / "policy.docx")
    scan = fx.make_scanned_pdf(incoming / "scan.pdf")
    sheet = incoming / "budget.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    big = fx.make_large_pdf(incoming / "big.pdf", megabytes=1.5)

    status, docs, _ = page.upload([str(pdf), str(docx), str(scan), str(sheet), str(big)])
    assert "Harbour handbook.pdf: added and indexed (saved as Harbour_handbook.pdf)." in status
    assert "policy.docx: added and indexed." in status
    assert "scan.pdf: no text layer" in status  # refused before it is saved: nothing half-indexed is left
    assert "budget.xlsx: only .txt, .md" in status
    assert "big.pdf:" in status and "over the 1 MB limit" in status
    assert sorted(p.name for p in settings.seeds_dir.iterdir()) == ["Harbour_handbook.pdf", "policy.docx"]
    assert "2 documents" in docs

    *_, last = page.chat("When does the harbour office open?", None)
    _, messages, _, data = last
    assert data["citations"][0]["page"] == 2
    html = messages[-1]["content"]
    assert "page 2" in html and 'class="qa-passage qa-document"' in html
    assert "<mark>The harbour office opens at seven in the morning and closes at half past five.</mark>" in html
    assert "Harbour operations handbook" in html.split("qa-document")[1]  # the whole document, not just the passage

    fx.make_scanned_pdf(settings.seeds_dir / "scan.pdf")  # put there by hand: the re-index names it
    status, _ = page.reindex()
    assert "1 not indexed" in status and "Skipped scan.pdf: no text layer" in status


def test_qa_eval_results_carry_page_section_and_folder(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    fx.make_pdf(docs / "handbook.pdf")
    fx.make_markdown(docs / "travel.md")
    gold = tmp_path / "gold.jsonl"
    items = [
        {"id": "pdf", "question": "When does the harbour office open?", "answers": ["seven in the morning"],
         "answerable": True, "evidence": ["The harbour office opens at seven in the morning"]},
        {"id": "row", "question": "What is the daily allowance in Japan?", "answers": ["6000 JPY"],
         "answerable": True, "evidence": ["| Japan | 6000 JPY | 20000 JPY |"]},
    ]
    gold.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--corpus", str(docs), "--out", str(out), "--json"],
                                env={"QA_DATA_DIR": str(tmp_path / ".qa")})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["answer_contains"] == 1.0 and summary["retrieval_hit_at_k"] == 1.0
    records = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text(encoding="utf-8").splitlines())}
    assert records["pdf"]["citations"][0]["page"] == 2 and records["pdf"]["citations"][0]["folder"] == "docs"
    assert records["row"]["citations"][0]["section"] == "Travel policy › Allowances"


def test_ingest_of_one_unreadable_file_fails_in_one_line(tmp_path: Path) -> None:
    scan = fx.make_scanned_pdf(tmp_path / "scan.pdf")
    result = CliRunner().invoke(main, ["ingest", str(scan)], env={"QA_DATA_DIR": str(tmp_path / ".qa")})
    assert result.exit_code == 1
    assert result.output.startswith("Error: Can't index") and "no text layer" in result.output
    assert len(result.output.strip().splitlines()) == 1
